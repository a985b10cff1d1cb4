"""Verdict events from the datapath to NATS: read, named, published.

`EventReader` polls the pinned ring buffer weir_events_v1 with BCC on a thread of its own
(`ring_buffer_poll` blocks in epoll; a poll's records are handed to the event loop as one
batch). `FlowPublisher`, on the loop, decodes each record, names it (flows.py: the endpoint's
pod, the remote's pod or kind from the ipcache, the policy behind the cookie) and publishes a
`weir.models.Flow` on weir.flows.<node>. Its queue is bounded: when NATS cannot keep up, events
are dropped here and counted, never piled up without end. The datapath already rate-limits and
counts what it suppresses or loses.
"""

from __future__ import annotations

import asyncio
import ctypes as ct
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from weir import catalog
from weir.codec import Codec
from weir.models import EndpointRecord, Flow

from weir_node_loader import flows, maps
from weir_node_loader.metrics import Metrics
from weir_node_loader.policy_sync import PolicySync

log = logging.getLogger("weir.node_loader.events")

POLL_MS = 200


class EventReader:
    """The ring buffer's records, in batches, to `deliver` (called on the reading thread)."""

    def __init__(self, module: Any, deliver: Callable[[list[bytes]], None]) -> None:
        self._module = module
        self._deliver = deliver
        self._batch: list[bytes] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, ctx: Any, data: Any, size: int) -> int:
        self._batch.append(ct.string_at(data, size))
        return 0

    def start(self) -> None:
        self._module[maps.EVENTS.name.encode()].open_ring_buffer(self._record)
        self._thread = threading.Thread(target=self._loop, name="weir-events", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._module.ring_buffer_poll(POLL_MS)
            except Exception as e:  # never let the reader die silently
                log.error("reading verdict events failed: %s", e)
                self._stop.wait(1.0)
            if self._batch:
                batch, self._batch = self._batch, []
                self._deliver(batch)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * POLL_MS / 1000 + 1)


class FlowPublisher:
    def __init__(
        self,
        *,
        node: str,
        publish: Callable[[str, bytes], Any],
        sync: PolicySync,
        endpoint_of: Callable[[int], EndpointRecord | None],
        metrics: Metrics,
        backlog: int = 10000,
    ) -> None:
        self.node = node
        self._publish = publish
        self._sync = sync
        self._endpoint_of = endpoint_of
        self._metrics = metrics
        self._subject = catalog.flows_subject(node)
        self._codec = Codec(catalog.FLOWS_SCHEMA)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=backlog)
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def deliver(self, batch: list[bytes]) -> None:
        """From the reading thread: hand a batch to the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.offer, batch)

    def offer(self, batch: list[bytes]) -> None:
        """On the loop: queue records for publishing (counted drops when the queue is full)."""
        for raw in batch:
            try:
                self._queue.put_nowait(raw)
            except asyncio.QueueFull:
                self._metrics.flow_events_dropped.labels("backlog").inc()

    def name(self, raw: bytes, realtime_offset_ns: int) -> Flow:
        event = flows.Event.decode(raw)
        endpoint = self._endpoint_of(event.ifindex)
        return flows.name_flow(
            event,
            node=self.node,
            realtime_offset_ns=realtime_offset_ns,
            endpoint=endpoint,
            policy=self._sync.policy_for(endpoint) if endpoint is not None else None,
            remote=self._sync.remote_entry(event.remote_ip),
            cookie_names=self._sync.cookie_names,
        )

    async def run(self) -> None:
        while True:
            raw = await self._queue.get()
            offset = time.time_ns() - time.monotonic_ns()
            try:
                flow = self.name(raw, offset)
            except ValueError as e:
                self._metrics.flow_events_dropped.labels("undecodable").inc()
                log.warning("undecodable verdict event: %s", e)
                continue
            try:
                await self._publish(self._subject, self._codec.encode(flow))
            except Exception as e:
                self._metrics.flow_events_dropped.labels("publish").inc()
                log.warning("cannot publish a flow: %s", e)
                continue
            self._metrics.flows_published.labels(flow.verdict.value).inc()
