"""Serving one watch as a chunked `application/json` stream, one event per line.

Order: the initial state (synthetic ADDED) or the history backlog, the initial-events-end
BOOKMARK when asked for, then live events from the watcher's queue. While idle it sends a
BOOKMARK every bookmark interval (when the client allows them) and a last one before a
timeout closes the stream. A closed watcher (too slow, server shutdown, drop-watches) ends
the stream; the client re-watches from its last resourceVersion.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from . import tables
from .encoding import Output
from .resources import ResourceInfo
from .store import Delivery, Entry, Store, Watcher

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_BATCH = 512
_DISCONNECT_CHECK = 5.0


@dataclass
class WatchParams:
    timeout: float
    bookmarks: bool
    initial_events_end: bool
    bookmark_interval: float


class EventEncoder:
    """Turns deliveries into lines; plain JSON reuses each object's cached bytes."""

    def __init__(self, res: ResourceInfo, out: Output, clock: Any = time.time) -> None:
        self.res = res
        self.out = out
        self.clock = clock
        self._headers_sent = False

    def _wrap(self, typ: str, raw: bytes) -> bytes:
        return b'{"type":"' + typ.encode() + b'","object":' + raw + b"}\n"

    def _table(self, obj: dict[str, Any], rv: str) -> bytes:
        headers = not self._headers_sent
        self._headers_sent = True
        t = tables.table(
            self.res.kind,
            [obj],
            self.clock(),
            include=self.out.include,
            list_meta={"resourceVersion": rv},
            headers=headers,
        )
        t["apiVersion"] = f"meta.k8s.io/{self.out.table_version}"
        return orjson.dumps(t)

    def _partial(self, obj: dict[str, Any]) -> bytes:
        p = tables.partial_metadata(obj)
        p["apiVersion"] = f"meta.k8s.io/{self.out.table_version}"
        return orjson.dumps(p)

    def entry(self, typ: str, e: Entry) -> bytes:
        if self.out.as_table:
            return self._wrap(typ, self._table(e.obj, str(e.rv)))
        if self.out.as_partial:
            return self._wrap(typ, self._partial(e.obj))
        return self._wrap(typ, e.raw)

    def delivery(self, d: Delivery) -> bytes:
        typ, ev, use_old = d
        if self.out.as_table or self.out.as_partial:
            if use_old:
                assert ev.old is not None
                obj = orjson.loads(ev.old_raw_at_event_rv())
                e = Entry(obj, ev.rv)
            else:
                e = ev.entry
            return self.entry(typ, e)
        raw = ev.old_raw_at_event_rv() if use_old else ev.entry.raw
        return self._wrap(typ, raw)

    def bookmark(self, rv: int, *, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.res.kind, "apiVersion": self.res.api_version, "metadata": meta}
        return self._wrap("BOOKMARK", orjson.dumps(obj))

    @staticmethod
    def error(status: dict[str, Any]) -> bytes:
        return b'{"type":"ERROR","object":' + orjson.dumps(status) + b"}\n"


async def start_stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
    )
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp


async def _write_all(resp: web.StreamResponse, lines: Iterable[bytes]) -> None:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= _BATCH:
            await resp.write(b"".join(batch))
            batch = []
    if batch:
        await resp.write(b"".join(batch))


async def serve(
    request: web.Request,
    store: Store,
    w: Watcher,
    enc: EventEncoder,
    params: WatchParams,
) -> web.StreamResponse:
    """Stream `w` until timeout, closure or disconnect; always unregisters the watcher."""
    resp: web.StreamResponse | None = None
    try:
        resp = await start_stream(request)
        deadline = time.monotonic() + params.timeout
        if w.initial:
            initial, w.initial = w.initial, []
            await _write_all(resp, (enc.entry("ADDED", e) for e in initial))
        if w.backlog:
            backlog, w.backlog = w.backlog, []
            await _write_all(resp, (enc.delivery(d) for d in backlog))
        if params.initial_events_end:
            await resp.write(enc.bookmark(w.start_rv, initial_end=True))
        last_write = time.monotonic()
        transport = request.transport
        while True:
            if w.queue:
                batch: list[bytes] = []
                while w.queue and len(batch) < _BATCH:
                    batch.append(enc.delivery(w.queue.popleft()))
                await resp.write(b"".join(batch))
                last_write = time.monotonic()
                continue
            if w.closed:
                break
            now = time.monotonic()
            if now >= deadline:
                if params.bookmarks:
                    await resp.write(enc.bookmark(store.rv))
                break
            if transport is None or transport.is_closing():
                break
            if params.bookmarks and now - last_write >= params.bookmark_interval:
                await resp.write(enc.bookmark(store.rv))
                last_write = now
                continue
            wait = min(deadline - now, _DISCONNECT_CHECK)
            if params.bookmarks:
                wait = min(wait, last_write + params.bookmark_interval - now)
            w.wake.clear()
            if w.queue or w.closed:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.wake.wait(), max(wait, 0.001))
        await resp.write_eof()
        return resp
    except ConnectionError:
        # The client went away; there is nobody left to answer.
        return resp if resp is not None else web.Response(status=499)
    finally:
        store.stop_watch(w)


async def serve_error(request: web.Request, status: dict[str, Any]) -> web.StreamResponse:
    """A watch that fails after it started (410 Expired): HTTP 200 with one ERROR event."""
    resp = await start_stream(request)
    await resp.write(EventEncoder.error(status))
    await resp.write_eof()
    return resp
