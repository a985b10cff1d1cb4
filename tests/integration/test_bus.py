"""JetStream KV through weir.bus, against a real nats-server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from weir import catalog, telemetry
from weir.bus import (
    CAUGHT_UP,
    BusMetrics,
    CaughtUp,
    KvBucket,
    KvEntry,
    RevisionMismatch,
    open_bucket,
)
from weir.models import Meta, Namespace

pytestmark = pytest.mark.integration


@pytest.fixture
async def js(nats_server) -> AsyncIterator[nats.js.JetStreamContext]:  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_server.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def test_put_get_delete_with_headers(js: nats.js.JetStreamContext) -> None:
    kv = await KvBucket.ensure(js, "t-raw")
    assert await KvBucket.ensure(js, "t-raw")  # idempotent
    rev = await kv.put("a.b", b"v1", {"traceparent": "x"})
    entry = await kv.get("a.b")
    assert entry is not None and entry.value == b"v1" and entry.revision == rev
    assert entry.headers["traceparent"] == "x"
    await kv.delete("a.b")
    assert await kv.get("a.b") is None
    deleted = await kv.get("a.b", include_deleted=True)
    assert deleted is not None and deleted.deleted


async def test_compare_and_set(js: nats.js.JetStreamContext) -> None:
    kv = await KvBucket.ensure(js, "t-cas")
    rev = await kv.create("k", b"1")
    with pytest.raises(RevisionMismatch):
        await kv.create("k", b"again")
    rev2 = await kv.update("k", b"2", last=rev)
    with pytest.raises(RevisionMismatch):
        await kv.update("k", b"3", last=rev)  # lost the race: re-read and retry
    await kv.delete("k")
    assert await kv.create("k", b"after-delete") > rev2


async def test_watch_replays_latest_values_then_follows(js: nats.js.JetStreamContext) -> None:
    kv = await KvBucket.ensure(js, "t-watch")
    await kv.put("pod.x.a", b"old")
    await kv.put("pod.x.a", b"new", {"h": "1"})
    await kv.put("pod.x.b", b"b")
    await kv.put("pod.x.gone", b"g")
    await kv.delete("pod.x.gone")
    await kv.put("node.n", b"other prefix")
    watch = kv.watch("pod.>")
    seen = []
    async for item in watch:
        seen.append(item)
        if isinstance(item, CaughtUp):
            break
    assert [(e.key, e.value) for e in seen[:-1]] == [("pod.x.a", b"new"), ("pod.x.b", b"b")]
    assert seen[0].headers == {"h": "1"}
    await kv.delete("pod.x.a")
    await kv.put("pod.x.c", b"c")
    after = [await asyncio.wait_for(anext(watch), 5) for _ in range(2)]
    assert [(e.key, e.value) for e in after] == [("pod.x.a", None), ("pod.x.c", b"c")]
    await watch.aclose()


async def test_watch_of_an_empty_bucket_is_caught_up_at_once(js: nats.js.JetStreamContext) -> None:
    kv = await KvBucket.ensure(js, "t-empty")
    watch = kv.watch()
    assert await asyncio.wait_for(anext(watch), 5) is CAUGHT_UP
    await watch.aclose()


async def test_watch_of_an_empty_prefix_in_a_busy_bucket_is_caught_up_at_once(
    js: nats.js.JetStreamContext,
) -> None:
    kv = await KvBucket.ensure(js, "t-busy")
    for i in range(5):
        await kv.put(f"pod.x.p{i}", b"v")
    watches = [kv.watch(f"{prefix}.>") for prefix in ("service", "node", "networkpolicy")]
    for watch in watches:
        assert await asyncio.wait_for(anext(watch), 5) is CAUGHT_UP
        await watch.aclose()


async def test_malformed_values_are_logged_counted_and_skipped(
    js: nats.js.JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    kv = await open_bucket(js, catalog.K8S, BusMetrics(registry))
    good = Namespace(meta=Meta(name="x", uid="u", resource_version="1"))
    await kv.put("namespace.x", good)
    await kv.raw.put("namespace.garbage", b"\x00not msgpack")
    await kv.raw.put("namespace.future", msgspec.msgpack.encode((99, "Namespace", {})))
    await kv.put("namespace.y", Namespace(meta=Meta(name="y", uid="u2", resource_version="2")))
    caplog.set_level(logging.ERROR, logger="weir.bus")
    updates = []
    async for item in kv.watch("namespace.>"):
        if isinstance(item, CaughtUp):
            break
        updates.append(item)
    assert [u.key for u in updates] == ["namespace.x", "namespace.y"]
    assert updates[0].value == good
    errors = {r.key: r.reason for r in caplog.records}  # type: ignore[attr-defined]
    assert errors == {"namespace.garbage": "malformed", "namespace.future": "unknown_version"}

    def count(reason: str) -> float | None:
        return registry.get_sample_value(
            "weir_bus_decode_errors_total", {"source": "weir-k8s", "reason": reason}
        )

    assert count("malformed") == 1 and count("unknown_version") == 1
    assert await kv.get("namespace.garbage") is None  # skipped on get as well
    assert count("malformed") == 2


async def test_trace_context_travels_with_the_value(js: nats.js.JetStreamContext) -> None:
    tracer = TracerProvider().get_tracer("test")
    kv = await open_bucket(js, catalog.K8S, BusMetrics(CollectorRegistry()))
    with tracer.start_as_current_span("change") as span:
        await kv.put("namespace.t", Namespace(meta=Meta(name="t", uid="u", resource_version="1")))
        trace_id = span.get_span_context().trace_id
    async for item in kv.watch("namespace.t"):
        assert not isinstance(item, CaughtUp)
        carried = trace.get_current_span(item.context).get_span_context()
        assert carried.trace_id == trace_id and carried.is_remote
        break
    assert telemetry.extract({}) is not None


async def test_a_cursor_is_caught_up_once_everything_delivered_is_applied(
    js: nats.js.JetStreamContext,
) -> None:
    from weir.bus import WatchCursor

    kv = await KvBucket.ensure(js, "t-cursor")
    await kv.put("a", b"1")
    await kv.put("gone", b"x")
    await kv.delete("gone")  # replayed as nothing, yet must not hold the cursor back
    cursor = WatchCursor("t-cursor")
    watch = kv.watch(">", cursor)
    first = await asyncio.wait_for(anext(watch), 5)
    assert isinstance(first, KvEntry) and first.key == "a"
    assert not await cursor.caught_up()  # delivered, not yet applied
    cursor.mark_applied(first.revision)
    assert await asyncio.wait_for(anext(watch), 5) is CAUGHT_UP
    assert await cursor.caught_up()
    await kv.put("b", b"2")
    second = await asyncio.wait_for(anext(watch), 5)
    assert isinstance(second, KvEntry)
    assert not await cursor.caught_up()
    cursor.mark_applied(second.revision)
    assert await cursor.caught_up()
    await watch.aclose()


async def test_a_filtered_cursor_is_caught_up_though_the_server_skips_other_keys(
    js: nats.js.JetStreamContext,
) -> None:
    from weir.bus import WatchCursor

    kv = await KvBucket.ensure(js, "t-filtered-cursor")
    for i in range(5):
        await kv.put(f"pod.x.p{i}", b"v")
    cursor = WatchCursor("policies")
    watch = kv.watch("networkpolicy.>", cursor)
    assert await asyncio.wait_for(anext(watch), 5) is CAUGHT_UP
    assert await cursor.caught_up()
    await kv.put("pod.x.late", b"v")  # not ours: the cursor stays caught up
    assert await cursor.caught_up()
    await kv.put("networkpolicy.x.p", b"v")
    entry = await asyncio.wait_for(anext(watch), 5)
    assert isinstance(entry, KvEntry)
    assert not await cursor.caught_up()
    cursor.mark_applied(entry.revision)
    assert await cursor.caught_up()
    await watch.aclose()


async def test_many_snapshots_at_once_each_see_every_key(js: nats.js.JetStreamContext) -> None:
    # Many consumers at once: the server sends everything before the client library has
    # handed much of it over, so "nothing pending on the server" alone would end a snapshot
    # too early.
    kv = await KvBucket.ensure(js, "t-snapshots")
    keys = {f"pod.x.p{i}" for i in range(400)}
    acks = [await kv.put_async(k, b"v") for k in sorted(keys)]
    await asyncio.gather(*acks)
    for _round in range(3):
        snaps = await asyncio.gather(*(kv.snapshot("pod.>") for _ in range(12)))
        assert [len(s) for s in snaps] == [len(keys)] * len(snaps)
