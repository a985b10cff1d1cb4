"""Pipelined KV writes: send without waiting, collect the acks in order, report each outcome.

JetStream acknowledges every write; waiting for each ack before the next send would cap a
writer at one round trip per change. Writes on one connection reach the stream in the order
they were sent, so `send` returns once the write is on the wire and `run` awaits the acks
behind it. Every write ends in exactly one call of `on_done(token, error)`: error is None when
the server acknowledged it, else what went wrong (not sent, refused, or no ack in time) — the
owner then knows the key's content is uncertain and writes it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from weir.bus import KvBucket

log = logging.getLogger("weir.kvwriter")

T = TypeVar("T")


@dataclass(slots=True)
class _InFlight(Generic[T]):
    key: str
    token: T
    ack: asyncio.Future[object]


class PipelinedWriter(Generic[T]):
    def __init__(
        self,
        bucket: KvBucket,
        *,
        on_done: Callable[[T, BaseException | None], None],
        max_in_flight: int = 1024,
        ack_timeout: float = 10.0,
    ) -> None:
        self._bucket = bucket
        self._on_done = on_done
        self._ack_timeout = ack_timeout
        self._queue: asyncio.Queue[_InFlight[T]] = asyncio.Queue(maxsize=max_in_flight)
        self.in_flight = 0  # sent (or being sent) and not yet acknowledged or reported failed

    async def send(
        self, key: str, value: bytes | None, headers: Mapping[str, str], token: T
    ) -> None:
        """A put (None: a delete). Blocks only while `max_in_flight` acks are outstanding."""
        self.in_flight += 1
        try:
            ack = await self._bucket.put_async(key, value, headers)
        except Exception as e:  # not even sent (e.g. disconnected): same remedy as a lost ack
            self.in_flight -= 1
            log.error("KV write of %s not sent: %s", key, e, extra={"key": key})
            self._on_done(token, e)
            return
        await self._queue.put(_InFlight(key, token, ack))  # type: ignore[arg-type]

    async def drain(self) -> None:
        """Wait until every write sent so far has been acknowledged or reported failed."""
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
                self._on_done(item.token, e)
            else:
                self._on_done(item.token, None)
            finally:
                self.in_flight -= 1
                self._queue.task_done()
