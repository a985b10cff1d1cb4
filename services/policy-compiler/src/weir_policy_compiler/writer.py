"""Pipelined weir-policy writes: send at once, collect acks in order, report failures.

Writes on one connection reach the stream in the order they were sent, so waiting for each ack
before the next send would only add round trips. A write that fails (or is not acknowledged in
time) is reported through `on_failure`, which tells the core that the key's content is unknown
so the endpoint is written again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from weir.bus import KvBucket

log = logging.getLogger("weir.policy_compiler.writer")


@dataclass(slots=True)
class _InFlight:
    key: str
    is_delete: bool
    ack: asyncio.Future[object]


class Writer:
    def __init__(
        self,
        bucket: KvBucket,
        *,
        on_failure: Callable[[str, bool], None],
        max_in_flight: int = 1024,
        ack_timeout: float = 10.0,
    ) -> None:
        self._bucket = bucket
        self._on_failure = on_failure
        self._ack_timeout = ack_timeout
        self._queue: asyncio.Queue[_InFlight] = asyncio.Queue(maxsize=max_in_flight)
        self.in_flight = 0

    async def send(self, key: str, value: bytes | None, headers: Mapping[str, str]) -> None:
        """A put (None: a delete). Blocks only while too many acks are outstanding."""
        self.in_flight += 1
        try:
            ack = await self._bucket.put_async(key, value, headers)
        except Exception as e:  # not even sent (e.g. disconnected): same remedy as a lost ack
            self.in_flight -= 1
            log.error("KV write of %s not sent: %s", key, e, extra={"key": key})
            self._on_failure(key, value is None)
            return
        await self._queue.put(_InFlight(key, value is None, ack))  # type: ignore[arg-type]

    async def drain(self) -> None:
        await self._queue.join()

    async def run(self) -> None:
        """Collect acks in send order, until cancelled."""
        while True:
            item = await self._queue.get()
            try:
                await asyncio.wait_for(asyncio.shield(item.ack), self._ack_timeout)
            except Exception as e:
                item.ack.cancel()
                log.error("KV write of %s failed: %s", item.key, e, extra={"key": item.key})
                self._on_failure(item.key, item.is_delete)
            finally:
                self.in_flight -= 1
                self._queue.task_done()
