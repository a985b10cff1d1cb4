"""policy-compiler end to end: real nats-server, real policy-compiler process, real API server.

The inputs are written here as their owners would write them: weir-k8s as k8s-watcher does, and
weir-identities and weir-ipcache as identity-allocator's contract says (the unit tests'
FakeAllocator computes them). The outputs are read back from weir-policy and judged: an
endpoint for every bound pod, the tables a policy asks for, changes applied incrementally (keys
an input change does not affect are not rewritten), the convergence barrier answering only once
weir-policy reflects everything written before it was asked, one trace from the input write to
the output write, a level-triggered restart, and a Kubernetes Event for a policy that cannot be
fully enforced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from opentelemetry.trace import SpanContext, TraceFlags, format_trace_id
from opentelemetry.trace.propagation import set_span_in_context
from opentelemetry.trace.span import NonRecordingSpan
from prometheus_client import CollectorRegistry
from weir import catalog, telemetry
from weir.bus import BusMetrics, KvEntry, TypedKv, open_bucket
from weir.codec import Codec
from weir.models import (
    BarrierReply,
    BarrierRequest,
    EndpointPolicy,
    Identity,
    IPCacheEntry,
    K8sObject,
    Meta,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
)

from tests.support.processes import ApiServer, NatsServer, Service, eventually
from tests.unit.policy_compiler.harness import (
    FakeAllocator,
    make_namespace,
    make_pod,
    make_policy,
)

pytestmark = pytest.mark.integration

BARRIER = Codec(catalog.BARRIER_SCHEMA)
POLICY = Codec(catalog.POLICY_SCHEMA)
HOST = 1


class Cluster:
    """The three input buckets, written as their owners write them, and weir-policy read back."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.namespaces: dict[str, Namespace] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.policies: dict[tuple[str, str], NetworkPolicy] = {}
        self.allocator = FakeAllocator()
        self.identities: dict[str, Identity] = {}
        self.ipcache: dict[str, IPCacheEntry] = {}

    async def open(self) -> Cluster:
        js, metrics = self.nc.jetstream(), BusMetrics(CollectorRegistry())
        self.k8s: TypedKv[K8sObject] = await open_bucket(js, catalog.K8S, metrics)
        self.ids: TypedKv[Identity] = await open_bucket(js, catalog.IDENTITIES, metrics)
        self.ipc: TypedKv[IPCacheEntry] = await open_bucket(js, catalog.IPCACHE, metrics)
        self.out: TypedKv[EndpointPolicy] = await open_bucket(js, catalog.POLICY, metrics)
        return self

    # --- inputs -------------------------------------------------------------------------------

    async def put(self, *objs: K8sObject, headers: dict[str, str] | None = None) -> None:
        """k8s-watcher's writes, then identity-allocator's for what they need."""
        for obj in objs:
            ref = (obj.meta.namespace, obj.meta.name)
            if isinstance(obj, Namespace):
                self.namespaces[obj.meta.name] = obj
            elif isinstance(obj, Pod):
                self.pods[ref] = obj
            elif isinstance(obj, NetworkPolicy):
                self.policies[ref] = obj
            await self.k8s.raw.put(catalog.k8s_key_of(obj), self.k8s.encode(obj), headers)
        await self.allocate(headers)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        if kind == "pod":
            del self.pods[(namespace, name)]
        elif kind == "networkpolicy":
            del self.policies[(namespace, name)]
        await self.k8s.delete(catalog.k8s_key(kind, namespace, name))
        await self.allocate()

    async def allocate(self, headers: dict[str, str] | None = None) -> None:
        identities, ipcache = self.allocator.desired(
            self.namespaces, self.pods, self.policies.values()
        )
        await _sync(self.ids, self.identities, identities, headers)
        await _sync(self.ipc, self.ipcache, ipcache, headers)

    # --- weir-policy --------------------------------------------------------------------------

    async def output(self) -> dict[str, KvEntry]:
        return await self.out.raw.snapshot()

    async def endpoint(self, key: str) -> EndpointPolicy:
        entry = await self.out.raw.get(key)
        assert entry is not None and entry.value is not None, f"no {key} in weir-policy"
        return POLICY.decode(entry.value)

    async def barrier(self, wait: float = 30.0) -> BarrierReply:
        msg = await self.nc.request(
            catalog.barrier_subject("policy-compiler"),
            BARRIER.encode(BarrierRequest(wait_seconds=wait)),
            timeout=wait + 5,
        )
        reply = BARRIER.decode(msg.data)
        assert isinstance(reply, BarrierReply)
        return reply


async def _sync(
    kv: TypedKv[Any],
    held: dict[str, Any],
    wanted: dict[str, Any],
    headers: dict[str, str] | None,
) -> None:
    for key in sorted(set(held) - set(wanted)):
        del held[key]
        await kv.raw.delete(key, headers)
    for key, value in sorted(wanted.items()):
        if held.get(key) != value:
            held[key] = value
            await kv.raw.put(key, kv.encode(value), headers)


@pytest.fixture
async def cluster(nats_server: NatsServer) -> AsyncIterator[Cluster]:
    nc = await nats.connect(nats_server.url)
    try:
        yield await Cluster(nc).open()
    finally:
        await nc.close()


@pytest.fixture
def compiler(tmp_path: Path, nats_server: NatsServer, api: ApiServer) -> Iterator[Service]:
    svc = Service(
        "policy-compiler", tmp_path, nats_server, env={"WEIR_KUBECONFIG": str(api.kubeconfig)}
    )
    try:
        yield svc
    finally:
        svc.stop()


def a_from_b(**extra: Any) -> NetworkPolicy:
    return make_policy(
        {
            "metadata": {"name": "a-from-b", "namespace": "x", **extra},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
            },
        }
    )


async def model(cluster: Cluster) -> None:
    """x and y with pods a and b (x/* on node-1, y/* on node-2), an unbound pod, and a kind
    that is no input of policy (skipped, but it must not hold up the barrier)."""
    node = Node(
        meta=Meta(name="node-1", uid="n1", resource_version="1"),
        internal_ips=("172.18.0.2",),
        external_ips=(),
        pod_cidrs=("10.244.1.0/24",),
        taints=(),
        ready=True,
        unschedulable=False,
    )
    await cluster.put(node, make_namespace("x"), make_namespace("y"))
    await cluster.put(
        make_pod("x", "a", ip="10.244.1.1"),
        make_pod("x", "b", ip="10.244.1.2"),
        make_pod("y", "a", ip="10.244.2.1", node="node-2"),
        make_pod("y", "b", ip="10.244.2.2", node="node-2"),
        make_pod("y", "pending", ip="", node=""),
    )


MODEL_KEYS = ["node-1.x.a", "node-1.x.b", "node-2.y.a", "node-2.y.b"]


async def test_outputs_appear_and_stale_keys_go(cluster: Cluster, compiler: Service) -> None:
    await model(cluster)
    await cluster.out.raw.put("node-9.gone.pod", b"left over from a pod deleted meanwhile")
    compiler.start_ready()
    assert (await cluster.barrier()).converged
    assert sorted(await cluster.output()) == MODEL_KEYS
    ep = await cluster.endpoint("node-1.x.a")
    assert ep.identity == cluster.ipcache["10.244.1.1/32"].identity
    assert not ep.ingress.enforced and not ep.egress.enforced
    assert compiler.metric("weir_policy_compiler_endpoints") == 4

    # Bound now: its endpoint appears (node-loader's CNI ADD waits for exactly this).
    await cluster.put(make_pod("y", "pending", ip="10.244.2.3", node="node-2"))
    assert (await cluster.barrier()).converged
    assert "node-2.y.pending" in await cluster.output()


async def test_changes_apply_incrementally_and_the_barrier_covers_them(
    cluster: Cluster, compiler: Service
) -> None:
    await model(cluster)
    compiler.start_ready()
    assert (await cluster.barrier()).converged
    before = {k: e.revision for k, e in (await cluster.output()).items()}

    await cluster.put(a_from_b())
    reply = await cluster.barrier()  # asked right after the writes: no sleeping
    assert reply.converged, reply.detail
    after = {k: e.revision for k, e in (await cluster.output()).items()}
    assert [k for k in MODEL_KEYS if after[k] != before[k]] == ["node-1.x.a"]
    ep = await cluster.endpoint("node-1.x.a")
    assert ep.ingress.enforced
    b = cluster.ipcache["10.244.1.2/32"].identity
    assert {(e.identity, e.protocol, e.port) for e in ep.ingress.entries} == {
        (HOST, 0, 0),
        (b, 0, 0),
    }
    assert ep.cookies[ep.ingress.default_cookie] == "x/a-from-b: ingress default deny"
    assert compiler.metric("weir_policy_compiler_recomputations_total", cause="policy") == 1

    # The same policy again (a new resourceVersion only): nothing is rewritten.
    await cluster.put(a_from_b(resourceVersion="2"))
    assert (await cluster.barrier()).converged
    assert {k: e.revision for k, e in (await cluster.output()).items()} == after

    # y/b relabelled pod=b... in y: x/a's peer is x-only, so only y/b itself changes.
    relabel = cluster.pods[("y", "b")]
    await cluster.put(replace(relabel, meta=replace(relabel.meta, labels={"pod": "b", "v": "2"})))
    assert (await cluster.barrier()).converged
    again = {k: e.revision for k, e in (await cluster.output()).items()}
    assert [k for k in MODEL_KEYS if again[k] != after[k]] == ["node-2.y.b"]

    # Deleting the policy and a pod: x/a opens again, x/b's key goes.
    await cluster.delete("networkpolicy", "x", "a-from-b")
    await cluster.delete("pod", "x", "b")
    assert (await cluster.barrier()).converged
    assert not (await cluster.endpoint("node-1.x.a")).ingress.enforced
    assert "node-1.x.b" not in await cluster.output()


async def test_one_trace_from_the_input_write_to_the_output_write(
    cluster: Cluster, compiler: Service
) -> None:
    await model(cluster)
    compiler.start_ready()
    assert (await cluster.barrier()).converged
    trace_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736
    parent = SpanContext(trace_id, 0x00F067AA0BA902B7, True, TraceFlags(1))
    headers: dict[str, str] = {}
    telemetry.inject(headers, set_span_in_context(NonRecordingSpan(parent)))
    await cluster.put(a_from_b(), headers=headers)
    assert (await cluster.barrier()).converged
    entry = await cluster.out.raw.get("node-1.x.a")
    assert entry is not None
    assert format_trace_id(trace_id) in entry.headers["traceparent"]


async def test_a_restart_converges_from_what_the_buckets_hold(
    cluster: Cluster, compiler: Service
) -> None:
    await model(cluster)
    await cluster.put(a_from_b())
    compiler.start_ready()
    assert (await cluster.barrier()).converged
    before = {k: e.revision for k, e in (await cluster.output()).items()}

    compiler.kill()
    await cluster.delete("pod", "y", "a")  # while it is down
    compiler.start_ready()
    assert (await cluster.barrier()).converged
    after = {k: e.revision for k, e in (await cluster.output()).items()}
    assert "node-2.y.a" not in after
    # Level-triggered: what was right is not written again.
    assert {k: after[k] for k in after} == {k: before[k] for k in after}


async def test_a_policy_it_cannot_use_is_an_event_and_the_rest_stays_in_force(
    cluster: Cluster, compiler: Service, api: ApiServer
) -> None:
    async with aiohttp.ClientSession(api.url) as http:
        for ns in ("x", "y"):
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            async with http.post("/api/v1/namespaces", json=body) as r:
                assert r.status == 201, await r.text()
        await model(cluster)
        compiler.start_ready()
        v6 = make_policy(
            {
                "metadata": {"name": "v6-only", "namespace": "x"},
                "spec": {
                    "podSelector": {"matchLabels": {"pod": "b"}},
                    "ingress": [{"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]}],
                },
            }
        )
        await cluster.put(a_from_b(), v6)
        assert (await cluster.barrier()).converged

        async def event() -> dict[str, Any] | None:
            async with http.get("/api/v1/namespaces/x/events") as r:
                items = (await r.json())["items"]
            return next((e for e in items if e["reason"] == "PolicyNotEnforceable"), None)

        ev = await eventually(event, what="the PolicyNotEnforceable Event")
        assert ev["type"] == "Warning"
        assert ev["involvedObject"]["kind"] == "NetworkPolicy"
        assert ev["involvedObject"]["name"] == "v6-only"
        assert ev["involvedObject"]["uid"] == "uid-v6-only"
        assert "IPv6" in ev["message"]

    # Fail closed: x/b is isolated and nothing is allowed in (but the node); x/a's policy holds.
    xb = await cluster.endpoint("node-1.x.b")
    assert xb.ingress.enforced and [e.identity for e in xb.ingress.entries] == [HOST]
    assert (await cluster.endpoint("node-1.x.a")).ingress.enforced
    assert compiler.metric("weir_policy_compiler_unusable_policies") == 1
    assert compiler.metric("weir_policy_compiler_events_total", result="created") == 1


async def test_ready_only_after_the_replays_are_applied(
    cluster: Cluster, compiler: Service
) -> None:
    await model(cluster)
    compiler.start_ready()
    # Ready means the initial compile is written: nothing else to wait for.
    assert sorted(await cluster.output()) == MODEL_KEYS
