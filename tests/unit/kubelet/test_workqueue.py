"""The keyed work queue: dedupe, one worker per key, re-queue while processing, backoff."""

from __future__ import annotations

import asyncio

from weir_local.kubelet.workqueue import WorkQueue


async def test_keys_are_deduplicated_and_requeued_after_processing() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    first = await q.get()
    assert first == "a" and q.busy == 1
    q.add("a")  # changed while being processed: not handed to a second worker
    assert len(q) == 1
    assert await q.get() == "b"
    q.done("a")
    assert len(q) == 1  # ... but queued again once its worker is done
    assert await q.get() == "a"
    q.done("a")
    q.done("b")
    assert len(q) == 0 and q.busy == 0


async def test_retry_backs_off_per_key_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    assert [q.retry("a") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    assert q.failures("a") == 4
    q.forget("a")
    assert q.failures("a") == 0 and q.retry("a") == 0.01
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_add_after_keeps_the_earliest_wakeup() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 10)
    q.add_after("a", 0.01)
    q.add_after("a", 5)
    assert await asyncio.wait_for(q.get(), 1) == "a"
