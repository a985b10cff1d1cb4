"""identity-allocator end to end: real nats-server, real allocator processes.

weir-k8s is written here directly, as k8s-watcher would write it; the allocator's outputs
(weir-identities, weir-ipcache) are read back and checked against what the protocol promises:
one number per label set and one label set per number — even with two replicas racing on the
same 1,000 label sets — stable across restarts, following label changes, released only after
the grace period, and never stopped by bad input.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import nats
import pytest
from opentelemetry.trace import SpanContext, TraceFlags, format_trace_id
from opentelemetry.trace.propagation import set_span_in_context
from opentelemetry.trace.span import NonRecordingSpan
from prometheus_client import CollectorRegistry
from weir import catalog, telemetry
from weir.bus import BusMetrics, CaughtUp, TypedKv, open_bucket
from weir.codec import Codec
from weir.identity import LOCAL_CIDR_FLAG, Reserved
from weir.models import (
    BarrierReply,
    BarrierRequest,
    Identity,
    IdentityLabels,
    IPCacheEntry,
    IPCacheKind,
    K8sObject,
)
from weir_identity_allocator.labels import label_hash, pod_labels

from tests.support.processes import (
    VENV_BIN,
    NatsServer,
    Service,
    eventually,
    require,
    wait_until,
)
from tests.unit.identity_allocator.fakes import cidr_policy, namespace, node, pod

pytestmark = pytest.mark.integration

BARRIER = Codec(catalog.BARRIER_SCHEMA)


class Buckets:
    def __init__(self, nc: Any) -> None:
        self.nc = nc

    async def open(self) -> Buckets:
        js, metrics = self.nc.jetstream(), BusMetrics(CollectorRegistry())
        self.k8s: TypedKv[K8sObject] = await open_bucket(js, catalog.K8S, metrics)
        self.ids: TypedKv[Identity] = await open_bucket(js, catalog.IDENTITIES, metrics)
        self.ipcache: TypedKv[IPCacheEntry] = await open_bucket(js, catalog.IPCACHE, metrics)
        return self

    async def put(self, objs: Iterable[K8sObject], headers: dict[str, str] | None = None) -> None:
        """Pipelined, as k8s-watcher writes: send everything, then wait for every ack."""
        acks = [
            await self.k8s.raw.put_async(catalog.k8s_key_of(o), self.k8s.encode(o), headers)
            for o in objs
        ]
        await asyncio.gather(*acks)

    async def delete(self, key: str) -> None:
        await self.k8s.delete(key)

    async def identities(self) -> dict[str, Identity]:
        return await _decoded(self.ids)

    async def entries(self) -> dict[str, IPCacheEntry]:
        return await _decoded(self.ipcache)

    async def barrier(self, wait: float = 30.0) -> BarrierReply:
        msg = await self.nc.request(
            catalog.barrier_subject("identity-allocator"),
            BARRIER.encode(BarrierRequest(wait_seconds=wait)),
            timeout=wait + 5,
        )
        reply = BARRIER.decode(msg.data)
        assert isinstance(reply, BarrierReply)
        return reply


async def _decoded(kv: TypedKv[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async for item in kv.raw.watch():
        if isinstance(item, CaughtUp):
            return out
        assert item.value is not None
        out[item.key] = kv.codec.decode(item.value)
    return out


@pytest.fixture
async def kv(nats_server: NatsServer) -> AsyncIterator[Buckets]:
    nc = await nats.connect(nats_server.url)
    try:
        yield await Buckets(nc).open()
    finally:
        await nc.close()


def allocator(
    workdir: Path, nats_server: NatsServer, name: str = "a", **settings: object
) -> Service:
    env = {f"WEIR_{k.upper()}": str(v) for k, v in settings.items()}
    svc = Service("identity-allocator", workdir / name, nats_server, env=env)
    return svc


def check_identities(ids: dict[str, Identity], *, settled: bool = True) -> dict[str, int]:
    """The protocol's promises, read from the bucket. Returns label hash -> number.

    At every moment: a labels key names a number whose id key holds that label set, and no
    number is named by two. Once settled, also: each label set is held by that one id key (a
    replica that lost a race holds a second one until it has released it)."""
    numbers: dict[str, int] = {}
    holders: dict[str, list[int]] = {}
    for key, value in ids.items():
        kind, rest = key.split(".", 1)
        if kind == "id":
            assert int(rest) == value.id, key
            holders.setdefault(label_hash(value.labels), []).append(value.id)
    for key, value in ids.items():
        kind, h = key.split(".", 1)
        if kind == "labels":
            assert label_hash(value.labels) == h, key
            held = ids.get(f"id.{value.id}")
            assert held is not None and held.labels == value.labels, f"{key} names {value.id}"
            numbers[h] = value.id
    assert len(set(numbers.values())) == len(numbers), "a number named by two label sets"
    for h, ns in holders.items():
        if settled and h in numbers:
            assert ns == [numbers[h]], f"label set {h} held by {ns}"  # losers cleaned up
    return numbers


# --- the race -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["prefilled", "burst"])
@pytest.mark.parametrize(
    "cluster_id_max",
    [65535, 1400],
    ids=["wide-range", "tight-range-1145-numbers"],
)
async def test_two_replicas_racing_on_1000_label_sets_agree(
    tmp_path: Path, nats_server: NatsServer, kv: Buckets, cluster_id_max: int, mode: str
) -> None:
    """prefilled: both replicas start together on 1,000 pods already in weir-k8s.
    burst: both are running when the 1,000 pods arrive, so both see each one at once."""
    count = 1000
    pods = [
        pod("race", f"p{i}", {"app": f"app-{i}"}, ips=(f"10.200.{i // 250}.{i % 250 + 1}",))
        for i in range(count)
    ]
    if mode == "prefilled":
        await kv.put([namespace("race"), *pods])
    replicas = [
        allocator(tmp_path, nats_server, name, cluster_id_max=cluster_id_max)
        for name in ("r1", "r2")
    ]
    started = time.monotonic()
    for svc in replicas:
        svc.start()  # together: both allocate the same 1,000 label sets at once
    try:
        for svc in replicas:
            svc.wait_ready(lambda s=svc: _ready(s), timeout=120)
        ready = time.monotonic() - started
        if mode == "burst":
            started = time.monotonic()
            await kv.put([namespace("race"), *pods])

        async def converged() -> dict[str, int] | None:
            ids, entries = await kv.identities(), await kv.entries()
            numbers = check_identities(ids, settled=False)
            pod_entries = [e for e in entries.values() if e.kind is IPCacheKind.POD]
            if len(numbers) < count or len(pod_entries) < count:
                return None
            return numbers

        numbers = await eventually(converged, 120, "1,000 label sets numbered")
        elapsed = time.monotonic() - started

        async def settled() -> bool:
            try:
                return check_identities(await kv.identities()) == numbers
            except AssertionError:
                return False

        await eventually(settled, 10, "every lost reservation released")
        ns = namespace("race")
        entries = await kv.entries()
        for p in pods:
            h = label_hash(pod_labels(p, ns))
            entry = entries[f"{p.pod_ips[0]}/32"]
            assert entry.identity == numbers[h], p.meta.name
            assert (entry.pod_namespace, entry.pod_name) == ("race", p.meta.name)
        assert all(256 <= n <= cluster_id_max for n in numbers.values())
        hows = {
            how: sum(
                s.metric("weir_identity_allocator_allocations_total", how=how) for s in replicas
            )
            for how in ("created", "revived", "adopted")
        }
        conflicts = {
            key: sum(
                s.metric("weir_identity_allocator_cas_conflicts_total", key=key) for s in replicas
            )
            for key in ("id", "labels")
        }
        print(
            f"\n{mode}: 2 replicas, {count} label sets, ids 256..{cluster_id_max}: ready in "
            f"{ready:.2f}s, converged in {elapsed:.2f}s; created {hows['created']:.0f}, revived "
            f"{hows['revived']:.0f}, adopted {hows['adopted']:.0f}; lost CAS on id keys "
            f"{conflicts['id']:.0f}, on labels keys {conflicts['labels']:.0f}"
        )
        # Each label set published exactly once: created fresh, or a reservation the other
        # replica saw before it was published, revived. The other replica adopted it.
        assert hows["created"] + hows["revived"] == count
        assert hows["adopted"] == count
        if cluster_id_max < 2000:
            assert conflicts["id"] > 0  # the tight range really made them collide
    finally:
        for svc in replicas:
            svc.stop()


def _ready(svc: Service) -> bool:
    from tests.support.processes import http_ok

    return http_ok(svc.readyz)


# --- stability, label changes, garbage collection -------------------------------------------


async def test_a_restart_keeps_every_id_and_allocates_nothing(
    tmp_path: Path, nats_server: NatsServer, kv: Buckets
) -> None:
    objs = [
        namespace("x", team="a"),
        *(pod("x", f"p{i}", {"app": f"a{i % 10}"}, ips=(f"10.244.1.{i + 1}",)) for i in range(50)),
        cidr_policy("x", "egress", ("10.0.0.0/8", ("10.1.0.0/16",))),
    ]
    await kv.put(objs)
    first = allocator(tmp_path, nats_server, "first")
    first.start_ready()
    try:
        assert (await kv.barrier()).converged
        before = check_identities(await kv.identities())
        entries_before = await kv.entries()
    finally:
        first.stop()
    assert len(before) == 12  # 10 pod label sets, 2 CIDRs

    second = allocator(tmp_path, nats_server, "second")
    second.start_ready()
    try:
        assert (await kv.barrier()).converged
        assert check_identities(await kv.identities()) == before
        assert await kv.entries() == entries_before
        assert second.metric("weir_identity_allocator_allocations_total", how="created") == 0
        assert second.metric("weir_identity_allocator_allocations_total", how="adopted") == 12
        assert second.metric("weir_kv_writes_total", bucket="weir-ipcache") == 0
    finally:
        second.stop()


async def test_a_label_change_moves_the_pod_in_one_trace_and_gc_waits_for_the_grace_period(
    tmp_path: Path, nats_server: NatsServer, kv: Buckets
) -> None:
    grace = 3.0
    svc = allocator(tmp_path, nats_server, identity_gc_grace_seconds=grace)
    svc.start_ready()
    try:
        await kv.put([namespace("x"), pod("x", "a", {"app": "web"}, ips=("10.244.1.5",))])
        assert (await kv.barrier()).converged
        web = (await kv.entries())["10.244.1.5/32"].identity

        # The relabel arrives with a trace context, as k8s-watcher writes it.
        trace_id = 0x0AF7651916CD43DD8448EB211C80319C
        parent = SpanContext(trace_id, 0x00F067AA0BA902B7, True, TraceFlags(1))
        headers: dict[str, str] = {}
        telemetry.inject(headers, set_span_in_context(NonRecordingSpan(parent)))
        changed_at = time.monotonic()
        await kv.put([pod("x", "a", {"app": "api"}, ips=("10.244.1.5",))], headers)
        assert (await kv.barrier()).converged
        entry = await kv.ipcache.raw.get("10.244.1.5/32")
        assert entry is not None and entry.value is not None
        moved = kv.ipcache.codec.decode(entry.value)
        assert isinstance(moved, IPCacheEntry) and moved.identity != web
        assert format_trace_id(trace_id) in entry.headers["traceparent"]  # one trace

        # The old identity is unused now; it stays for the grace period, then goes.
        ids = await kv.identities()
        assert f"id.{web}" in ids
        await asyncio.sleep(grace / 2)
        assert f"id.{web}" in await kv.identities(), "released before the grace period"

        async def released() -> bool:
            ids = await kv.identities()
            return f"id.{web}" not in ids and all(v.id != web for v in ids.values())

        await eventually(released, grace + 10, f"identity {web} released")
        assert time.monotonic() - changed_at >= grace
        assert svc.metric("weir_identity_allocator_gc_releases_total", outcome="released") == 1
        check_identities(await kv.identities())

        # Deleting the pod drops its entry (in the deletion's trace); its identity follows
        # after the grace period.
        deletion = SpanContext(trace_id + 1, 0x00F067AA0BA902B8, True, TraceFlags(1))
        await kv.k8s.delete("pod.x.a", set_span_in_context(NonRecordingSpan(deletion)))
        assert (await kv.barrier()).converged
        assert "10.244.1.5/32" not in await kv.entries()
        marker = await kv.ipcache.raw.get("10.244.1.5/32", include_deleted=True)
        assert marker is not None and marker.deleted
        assert format_trace_id(trace_id + 1) in marker.headers["traceparent"]
        assert f"id.{moved.identity}" in await kv.identities()

        async def gone() -> bool:
            return f"id.{moved.identity}" not in await kv.identities()

        await eventually(gone, grace + 10, "the deleted pod's identity released")
    finally:
        svc.stop()


async def test_cidr_identities_follow_policies_and_nodes_are_remote_nodes(
    tmp_path: Path, nats_server: NatsServer, kv: Buckets
) -> None:
    svc = allocator(tmp_path, nats_server, identity_gc_grace_seconds=1)
    svc.start_ready()
    try:
        await kv.put(
            [
                node("n1", "172.18.0.2"),
                cidr_policy("x", "p", ("10.0.0.0/8", ("10.1.0.0/16",)), ("0.0.0.0/0", ())),
            ]
        )
        assert (await kv.barrier()).converged
        entries = await kv.entries()
        cidr = entries["10.0.0.0/8"]
        assert cidr.kind is IPCacheKind.CIDR and cidr.identity & LOCAL_CIDR_FLAG
        assert entries["10.1.0.0/16"].identity & LOCAL_CIDR_FLAG
        assert entries["0.0.0.0/0"].identity == Reserved.WORLD
        assert entries["172.18.0.2/32"] == IPCacheEntry(
            prefix="172.18.0.2/32", identity=Reserved.REMOTE_NODE, kind=IPCacheKind.NODE, node="n1"
        )
        ids = await kv.identities()
        assert ids[f"id.{cidr.identity}"].labels == IdentityLabels(cidr="10.0.0.0/8")
        assert ids["id.6"].labels.reserved == "remote-node"

        listed = subprocess.run(
            [
                str(VENV_BIN / "weir"),
                "identity",
                "list",
                "-o",
                "json",
                "--nats-url",
                nats_server.url,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        rows = {r["id"]: r for r in json.loads(listed.stdout)}
        assert rows[cidr.identity] == {
            "id": cidr.identity,
            "kind": "cidr",
            "labels": {"cidr": "10.0.0.0/8"},
            "ipcache_entries": 1,
        }
        assert rows[2]["kind"] == "reserved" and rows[2]["ipcache_entries"] == 1
        assert rows[6]["ipcache_entries"] == 1 and len(rows) == 8 + 2

        await kv.delete("networkpolicy.x.p")
        assert (await kv.barrier()).converged
        assert "10.0.0.0/8" not in await kv.entries()

        async def released() -> bool:
            return not any(i.labels.cidr for i in (await kv.identities()).values())

        await eventually(released, 15, "CIDR identities released")
    finally:
        svc.stop()


async def test_an_identity_nothing_uses_at_start_is_released_after_the_grace_period(
    tmp_path: Path, nats_server: NatsServer, kv: Buckets
) -> None:
    stale = IdentityLabels(namespace="gone", pod_labels={"app": "old"})
    h = label_hash(stale)
    await kv.ids.put("id.4242", Identity(id=4242, labels=stale))
    await kv.ids.put(f"labels.{h}", Identity(id=4242, labels=stale))
    await kv.ids.put("id.4243", Identity(id=4243, labels=stale))  # a crashed allocation's orphan
    svc = allocator(tmp_path, nats_server, identity_gc_grace_seconds=2)
    started = time.monotonic()
    svc.start_ready()
    try:

        async def released() -> bool:
            ids = await kv.identities()
            return not ({"id.4242", "id.4243", f"labels.{h}"} & set(ids))

        await eventually(released, 20, "stale identities released")
        assert time.monotonic() - started >= 2
    finally:
        svc.stop()


# --- bad input and the barrier --------------------------------------------------------------


async def test_malformed_input_is_skipped_counted_and_the_rest_served(
    tmp_path: Path, nats_server: NatsServer, kv: Buckets
) -> None:
    await kv.put(
        [
            namespace("x"),
            pod("x", "bad-ip", {"app": "a"}, ips=("10.244.1.300",)),
            pod("x", "good", {"app": "b"}, ips=("10.244.1.7",)),
            node("n1", "not-an-ip", "172.18.0.2"),
            cidr_policy("x", "p", ("10.0.0.0/33", ()), ("192.168.0.0/16", ())),
        ]
    )
    await kv.k8s.raw.put("pod.x.garbage", b"\xc1 not msgpack")
    svc = allocator(tmp_path, nats_server)
    svc.start_ready()
    try:
        assert (await kv.barrier()).converged
        entries = await kv.entries()
        assert {"10.244.1.7/32", "172.18.0.2/32", "192.168.0.0/16"} <= set(entries)
        assert not any("300" in k or "/33" in k for k in entries)
        rejected = "weir_identity_allocator_rejected_inputs_total"
        assert svc.metric(rejected, reason="bad-ip") == 2  # the pod's and the node's
        assert svc.metric(rejected, reason="bad-cidr") == 1
        assert svc.metric("weir_bus_decode_errors_total", source="weir-k8s") == 1
        log = svc.log.read_text()
        assert "pod.x.bad-ip" in log and "networkpolicy.x.p" in log and "pod.x.garbage" in log

        # Still serving: a later change is applied, and problems are not counted again.
        await kv.put([pod("x", "late", {"app": "b"}, ips=("10.244.1.8",))])
        assert (await kv.barrier()).converged
        assert "10.244.1.8/32" in await kv.entries()
        assert svc.metric(rejected, reason="bad-ip") == 2
    finally:
        svc.stop()


async def test_the_barrier_answers_converged_only_with_everything_applied(
    tmp_path: Path, nats_server: NatsServer, kv: Buckets
) -> None:
    svc = allocator(tmp_path, nats_server)
    svc.start_ready()
    try:
        for round_, team in enumerate(("a", "b")):
            objs = [namespace("burst", team=team)]
            if round_ == 0:
                objs += [
                    pod(
                        "burst",
                        f"p{i}",
                        {"app": f"a{i % 40}"},
                        ips=(f"10.201.{i // 200}.{i % 200 + 1}",),
                    )
                    for i in range(600)
                ]
            await kv.put(objs)
            reply = await kv.barrier()  # asked right after the writes: no sleeping
            assert reply.converged, reply.detail
            entries = [e for e in (await kv.entries()).values() if e.kind is IPCacheKind.POD]
            assert len(entries) == 600
            ids = await kv.identities()
            teams = {ids[f"id.{e.identity}"].labels.namespace_labels.get("team") for e in entries}
            assert teams == {team}, f"round {round_}: some pods still on old identities"
    finally:
        svc.stop()


async def test_readiness_waits_for_nats(tmp_path: Path) -> None:
    require((VENV_BIN / "nats-server").exists(), "nats-server missing (run `make setup`)")
    server = NatsServer(tmp_path)  # not started yet
    svc = Service("identity-allocator", tmp_path, server)
    svc.start()
    try:
        from tests.support.processes import http_ok

        wait_until(lambda: _answers(svc), 30, "health server")
        assert not http_ok(svc.readyz)
        server.start()
        try:
            svc.wait_ready(lambda: http_ok(svc.readyz), timeout=30)
        finally:
            svc.stop()
            server.stop()
    finally:
        svc.stop()


def _answers(svc: Service) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(svc.readyz, timeout=1)
    except urllib.error.HTTPError:
        return True  # 503: up, not ready
    except OSError:
        return False
    return True
