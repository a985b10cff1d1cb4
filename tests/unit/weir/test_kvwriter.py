"""PipelinedWriter: every write ends in exactly one report, in send order, and in_flight counts
what is still open."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from weir.kvwriter import PipelinedWriter


class FakeBucket:
    """put_async hands back a future the test resolves; `refuse` makes sending itself fail."""

    def __init__(self) -> None:
        self.acks: dict[str, asyncio.Future[object]] = {}
        self.refuse: set[str] = set()

    async def put_async(
        self, key: str, value: bytes | None, headers: Mapping[str, str]
    ) -> asyncio.Future[object]:
        if key in self.refuse:
            raise ConnectionError("disconnected")
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.acks[key] = fut
        return fut


async def _writer(**kw: Any) -> tuple[PipelinedWriter[str], FakeBucket, list[tuple[str, str]]]:
    bucket = FakeBucket()
    done: list[tuple[str, str]] = []

    def on_done(token: str, error: BaseException | None) -> None:
        done.append((token, "ok" if error is None else type(error).__name__))

    return PipelinedWriter(bucket, on_done=on_done, **kw), bucket, done  # type: ignore[arg-type]


async def test_acks_and_failures_are_reported_once_each_in_send_order() -> None:
    writer, bucket, done = await _writer()
    collector = asyncio.create_task(writer.run())
    for key in ("a", "b", "c"):
        await writer.send(key, b"v", {}, f"t-{key}")
    assert writer.in_flight == 3
    bucket.acks["c"].set_result(object())  # acked out of order: still reported in order
    bucket.acks["b"].set_exception(RuntimeError("wrong last sequence"))
    bucket.acks["a"].set_result(object())
    await writer.drain()
    assert done == [("t-a", "ok"), ("t-b", "RuntimeError"), ("t-c", "ok")]
    assert writer.in_flight == 0
    collector.cancel()


async def test_a_write_that_cannot_be_sent_is_reported_at_once() -> None:
    writer, bucket, done = await _writer()
    bucket.refuse.add("x")
    await writer.send("x", None, {}, "t-x")
    assert done == [("t-x", "ConnectionError")]
    assert writer.in_flight == 0


async def test_an_ack_that_never_comes_is_a_failure_after_the_timeout() -> None:
    writer, bucket, done = await _writer(ack_timeout=0.05)
    collector = asyncio.create_task(writer.run())
    await writer.send("slow", b"v", {}, "t-slow")
    await asyncio.wait_for(writer.drain(), 5)
    assert done == [("t-slow", "TimeoutError")]
    assert bucket.acks["slow"].cancelled()
    collector.cancel()


async def test_send_waits_while_too_many_acks_are_outstanding() -> None:
    writer, bucket, _ = await _writer(max_in_flight=1)
    await writer.send("a", b"v", {}, "a")
    blocked = asyncio.create_task(writer.send("b", b"v", {}, "b"))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    collector = asyncio.create_task(writer.run())
    bucket.acks["a"].set_result(object())
    await asyncio.wait_for(blocked, 5)
    collector.cancel()
