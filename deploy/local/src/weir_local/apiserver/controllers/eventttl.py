"""Event TTL: Events are removed a fixed time after their last write (etcd lease upstream)."""

from __future__ import annotations

import logging

from ..errors import StatusError
from ..objmeta import parse_time
from ..operations import Api
from ..store import DELETED, WatchEvent
from .timers import DeadlineQueue

log = logging.getLogger(__name__)


class EventTTLController:
    def __init__(self, api: Api, *, ttl: float) -> None:
        self.api = api
        self.ttl = ttl
        self._events = api.resources.by_key("events")
        self._written: dict[tuple[str, str], float] = {}
        self.queue = DeadlineQueue(self._fire, api.clock)
        api.store.add_listener(self.on_event)

    def on_event(self, ev: WatchEvent) -> None:
        if ev.resource != "events":
            return
        key = (ev.namespace, ev.name)
        if ev.type == DELETED:
            self._written.pop(key, None)
            return
        now = self.api.clock()
        self._written[key] = now
        self.queue.add(now + self.ttl, key)

    def _fire(self, key: tuple[str, str]) -> None:
        written = self._written.get(key)
        if written is None or written + self.ttl > self.api.clock():
            return
        try:
            self.api.delete(self._events, key[0], key[1])
        except StatusError as e:
            if e.code != 404:
                log.info("event %s/%s: ttl: %s", key[0], key[1], e.message)

    async def run(self) -> None:
        # After a restart the last write time is not known: use the newest timestamp the
        # event carries, so old events still expire.
        for e in self.api.store.entries("events"):
            obj = e.obj
            m = obj["metadata"]
            stamps = [
                parse_time(obj.get("lastTimestamp")),
                parse_time(obj.get("eventTime")),
                parse_time(m.get("creationTimestamp")),
            ]
            written = max((s for s in stamps if s is not None), default=self.api.clock())
            key = (m.get("namespace", ""), m["name"])
            self._written[key] = written
            self.queue.add(written + self.ttl, key)
        await self.queue.run()
