"""A deadline queue for controllers that act when a time passes (pod termination, event TTL)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable


class DeadlineQueue:
    """Keys due at wall-clock times; `run` calls `fire(key)` once a key's time has come.

    Re-adding a key keeps every deadline; `fire` re-checks the current object, so a stale
    deadline is harmless.
    """

    def __init__(
        self, fire: Callable[[tuple[str, str]], None], clock: Callable[[], float] = time.time
    ) -> None:
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._fire = fire
        self._clock = clock
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, when: float, key: tuple[str, str]) -> None:
        heapq.heappush(self._heap, (when, key))
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                _, key = heapq.heappop(self._heap)
                self._fire(key)
            delay = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
