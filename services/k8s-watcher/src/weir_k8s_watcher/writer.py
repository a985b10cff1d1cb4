"""Pipelined KV writes: send without waiting, collect the acks in order, report failures.

JetStream acknowledges each write; waiting for every ack before the next send would cap the
watcher at one round trip per change. Writes on one connection reach the stream in the order
they were sent, so the writer sends at once and a collector awaits the acks behind it. A write
that fails or is not acknowledged in time is reported through `on_failure`, which makes the
owner forget what it believed the key holds and relist that kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from weir.bus import KvBucket

log = logging.getLogger("weir.k8s_watcher.writer")


@dataclass(slots=True)
class _InFlight:
    kind: str
    key: str
    ack: asyncio.Future[object]
    started: float  # monotonic time the change was received


class KvWriter:
    def __init__(
        self,
        bucket: KvBucket,
        *,
        on_acked: Callable[[str, float], None],
        on_failure: Callable[[str, str, BaseException], None],
        max_in_flight: int = 1024,
        ack_timeout: float = 10.0,
    ) -> None:
        self._bucket = bucket
        self._on_acked = on_acked
        self._on_failure = on_failure
        self._ack_timeout = ack_timeout
        self._queue: asyncio.Queue[_InFlight] = asyncio.Queue(maxsize=max_in_flight)
        self.in_flight = 0  # sent and not yet acknowledged (or reported failed)

    async def send(
        self,
        kind: str,
        key: str,
        value: bytes | None,
        headers: Mapping[str, str],
        started: float,
    ) -> None:
        """Send a put (or, for None, a delete). Blocks only when too many acks are pending."""
        self.in_flight += 1
        ack = await self._bucket.put_async(key, value, headers)
        await self._queue.put(_InFlight(kind, key, ack, started))  # type: ignore[arg-type]

    async def drain(self) -> None:
        """Wait until every write sent so far has been acknowledged (or reported failed)."""
        await self._queue.join()

    async def run(self) -> None:
        """Collect acks in send order, forever (until cancelled)."""
        while True:
            item = await self._queue.get()
            try:
                await asyncio.wait_for(asyncio.shield(item.ack), self._ack_timeout)
            except Exception as e:  # any failure of a write has the same remedy: resync
                item.ack.cancel()
                log.error(
                    "KV write of %s failed: %s",
                    item.key,
                    e,
                    extra={"key": item.key, "kind": item.kind},
                )
                self._on_failure(item.kind, item.key, e)
            else:
                self._on_acked(item.kind, time.monotonic() - item.started)
            finally:
                self.in_flight -= 1
                self._queue.task_done()
