"""Pod termination: removes a gracefully deleted pod once its grace period has passed.

This stands in for the kubelet's final `DELETE` with grace 0 (Weir's local kubelet will do
that itself once it has torn the pod down; whichever comes first wins, the other is a no-op).
"""

from __future__ import annotations

import logging

from ..errors import StatusError
from ..objmeta import parse_time
from ..operations import Api
from ..store import DELETED, WatchEvent
from .timers import DeadlineQueue

log = logging.getLogger(__name__)


class PodTerminationController:
    def __init__(self, api: Api) -> None:
        self.api = api
        self._pods = api.resources.by_key("pods")
        self.queue = DeadlineQueue(self._fire, api.clock)
        self._due: dict[tuple[str, str], float] = {}
        api.store.add_listener(self.on_event)

    def on_event(self, ev: WatchEvent) -> None:
        if ev.resource != "pods":
            return
        if ev.type == DELETED:
            self._due.pop((ev.namespace, ev.name), None)
            return
        meta = ev.entry.obj["metadata"]
        old = ev.old.obj["metadata"] if ev.old is not None else {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace and (
            meta.get("deletionTimestamp") != old.get("deletionTimestamp")
            or grace != old.get("deletionGracePeriodSeconds")
        ):
            # Seen live: count the grace from now, as a kubelet would (deletionTimestamp is
            # truncated to the second).
            self._schedule((ev.namespace, ev.name), self.api.clock() + grace)

    def _track(self, obj: dict[str, object]) -> None:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return
        ts = parse_time(meta.get("deletionTimestamp"))
        key = (str(meta.get("namespace", "")), str(meta["name"]))
        if ts is not None and meta.get("deletionGracePeriodSeconds") and key not in self._due:
            self._schedule(key, ts)

    def _schedule(self, key: tuple[str, str], when: float) -> None:
        self._due[key] = when
        self.queue.add(when, key)

    def _fire(self, key: tuple[str, str]) -> None:
        due = self._due.get(key)
        if due is None or due > self.api.clock():
            return  # a stale deadline (shortened since, or an earlier pod of that name)
        entry = self.api.store.get("pods", *key)
        if entry is None:
            self._due.pop(key, None)
            return
        meta = entry.obj["metadata"]
        if not meta.get("deletionTimestamp") or not meta.get("deletionGracePeriodSeconds"):
            return
        try:
            self.api.delete(self._pods, key[0], key[1], {"gracePeriodSeconds": 0})
        except StatusError as e:
            log.info("pod %s/%s: termination: %s", key[0], key[1], e.message)

    async def run(self) -> None:
        for e in self.api.store.entries("pods"):
            self._track(e.obj)
        await self.queue.run()
