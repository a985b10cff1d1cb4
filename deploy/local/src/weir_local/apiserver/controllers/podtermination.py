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
        api.store.add_listener(self.on_event)

    def on_event(self, ev: WatchEvent) -> None:
        if ev.resource == "pods" and ev.type != DELETED:
            self._track(ev.entry.obj)

    def _track(self, obj: dict[str, object]) -> None:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return
        ts = parse_time(meta.get("deletionTimestamp"))
        if ts is not None and meta.get("deletionGracePeriodSeconds"):
            self.queue.add(ts, (str(meta.get("namespace", "")), str(meta["name"])))

    def _fire(self, key: tuple[str, str]) -> None:
        entry = self.api.store.get("pods", *key)
        if entry is None:
            return
        meta = entry.obj["metadata"]
        ts = parse_time(meta.get("deletionTimestamp"))
        if ts is None or ts > self.api.clock() or not meta.get("deletionGracePeriodSeconds"):
            return
        try:
            self.api.delete(self._pods, key[0], key[1], {"gracePeriodSeconds": 0})
        except StatusError as e:
            log.info("pod %s/%s: termination: %s", key[0], key[1], e.message)

    async def run(self) -> None:
        for e in self.api.store.entries("pods"):
            self._track(e.obj)
        await self.queue.run()
