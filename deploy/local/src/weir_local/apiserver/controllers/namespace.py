"""The namespace controller: empties a Terminating namespace, then lets it go.

For every namespace being deleted it deletes each namespaced object in it (pods gracefully,
as upstream), re-checks until none is left, then drops the `kubernetes` finalizer so the
namespace itself disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..errors import StatusError
from ..operations import Api
from ..store import DELETED, WatchEvent

log = logging.getLogger(__name__)


class NamespaceController:
    def __init__(self, api: Api, *, resync: float = 1.0) -> None:
        self.api = api
        self.resync = resync
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        api.store.add_listener(self.on_event)

    def on_event(self, ev: WatchEvent) -> None:
        if ev.resource != "namespaces":
            return
        if ev.type == DELETED:
            self._pending.discard(ev.name)
        elif ev.entry.obj["metadata"].get("deletionTimestamp"):
            self._pending.add(ev.name)
            self._wake.set()

    async def run(self) -> None:
        for e in self.api.store.entries("namespaces"):
            if e.obj["metadata"].get("deletionTimestamp"):
                self._pending.add(e.obj["metadata"]["name"])
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            for name in sorted(self._pending):
                try:
                    if self.sweep(name):
                        self._pending.discard(name)
                except StatusError as e:
                    log.info("namespace %s: %s", name, e.message)
                await asyncio.sleep(0)
            if self._pending:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.resync)

    def sweep(self, namespace: str) -> bool:
        """Delete what is left in `namespace`; True once it is empty and finalized."""
        api = self.api
        remaining = 0
        for res in api.resources:
            if not res.namespaced:
                continue
            for e in api.store.entries(res.key, namespace):
                remaining += 1
                if e.obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    api.delete(res, namespace, e.obj["metadata"]["name"])
                except StatusError as err:
                    if err.code != 404:
                        raise
        if remaining:
            remaining = sum(
                api.store.count(r.key, namespace) for r in api.resources if r.namespaced
            )
        if remaining:
            return False
        api.finalize_namespace(namespace)
        return True
