"""PolicySync with the EndpointManager over the fake kernel and in-memory KV watches: a
registration waits for its policy and writes it before the hooks; changes are slot flips;
ipcache is this node's view; nothing is flushed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace

import pytest
from opentelemetry.context import Context
from prometheus_client import CollectorRegistry
from weir.bus import CAUGHT_UP, CaughtUp, Update, WatchCursor
from weir.identity import Reserved
from weir.models import (
    DirectionPolicy,
    EndpointPolicy,
    IPCacheEntry,
    IPCacheKind,
    PolicyEntry,
)
from weir_node_loader.ipcache import Value
from weir_node_loader.manager import EndpointManager, PolicyUnavailable
from weir_node_loader.maps import EpPolicyFlag
from weir_node_loader.maps import IPCacheKind as K
from weir_node_loader.metrics import Metrics
from weir_node_loader.policy_sync import PolicySync

from tests.unit.node_loader.fakes import NODE, FakeKernel, FakeStore, request


class FakeBucket:
    """KV watch deliveries, in order, with revisions."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Update[object] | CaughtUp] = asyncio.Queue()
        self.revision = 0

    def put(self, key: str, value: object | None) -> int:
        self.revision += 1
        self.queue.put_nowait(Update(key, value, self.revision, Context()))
        return self.revision

    def caught_up(self) -> None:
        self.queue.put_nowait(CAUGHT_UP)

    async def watch(
        self, pattern: str = ">", cursor: WatchCursor | None = None
    ) -> AsyncGenerator[Update[object] | CaughtUp, None]:
        while True:
            item = await self.queue.get()
            if cursor is not None and isinstance(item, Update):
                cursor.delivered = item.revision
            yield item


def endpoint_policy(
    pod: str = "pod-c1", uid: str = "uid-1", ingress: tuple[PolicyEntry, ...] = ()
) -> EndpointPolicy:
    return EndpointPolicy(
        node=NODE,
        pod_namespace="default",
        pod_name=pod,
        pod_uid=uid,
        identity=1000,
        ingress=DirectionPolicy(enforced=True, default_cookie=3, entries=ingress),
        egress=DirectionPolicy(),
        cookies={3: "default/deny: isolates ingress"},
    )


def key(pod: str = "pod-c1") -> str:
    return f"{NODE}.default.{pod}"


@dataclass
class World:
    manager: EndpointManager
    sync: PolicySync
    kernel: FakeKernel
    ipcache: FakeBucket
    policies: FakeBucket
    registry: CollectorRegistry

    async def settle(self) -> None:
        """Let the watches and the pass run."""
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not self.sync.busy and self.ipcache.queue.empty() and self.policies.queue.empty():
                await asyncio.sleep(0.02)
                if not self.sync.busy:
                    return
        raise AssertionError(f"not settled: {self.sync.busy}")


@pytest.fixture
async def world() -> AsyncIterator[World]:
    kernel, store, registry = FakeKernel(), FakeStore(), CollectorRegistry()
    kernel.add_veth(10, "wrc1")
    kernel.add_veth(11, "wrc2")
    metrics = Metrics(registry)
    lock = asyncio.Lock()
    manager = EndpointManager(
        node=NODE, kernel=kernel, store=store, metrics=metrics, lock=lock, policy_wait_seconds=1.0
    )
    sync = PolicySync(
        node=NODE,
        kernel=kernel,
        run=_inline,
        lock=lock,
        endpoints=manager.registry.all,
        metrics=metrics,
        host_addresses=("169.254.1.1",),
        ready=lambda: manager.ready,
    )
    manager.policy = sync
    ipcache, policies = FakeBucket(), FakeBucket()
    tasks = [
        asyncio.create_task(sync.watch_ipcache(ipcache)),  # type: ignore[arg-type]
        asyncio.create_task(sync.watch_policy(policies)),  # type: ignore[arg-type]
        asyncio.create_task(sync.run()),
    ]
    ipcache.caught_up()
    policies.caught_up()
    await manager.reconcile()
    try:
        yield World(manager, sync, kernel, ipcache, policies, registry)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _inline(fn):  # type: ignore[no-untyped-def]
    return fn()


async def test_a_registration_waits_for_its_policy_and_writes_it_before_the_hooks(
    world: World,
) -> None:
    world.kernel.calls.clear()
    put = asyncio.create_task(world.manager.put(request(pod_uid="uid-1")))
    await asyncio.sleep(0.1)
    assert not put.done() and world.kernel.entries == {}  # nothing programmed yet
    world.policies.put(key(), endpoint_policy())
    record = await asyncio.wait_for(put, 2)
    calls = world.kernel.calls
    assert calls.index("flip_policy") < calls.index("write_endpoint") < calls.index("attach")
    held = world.kernel.policy[10]
    assert held.config is not None and held.config.flags & EpPolicyFlag.INGRESS_ENFORCED
    assert held.config.ingress_cookie == 3 and record.host_ifindex == 10
    waits = world.registry.get_sample_value(
        "weir_node_loader_policy_waits_total", {"outcome": "arrived"}
    )
    assert waits == 1


async def test_no_policy_in_time_is_a_refusal_that_programs_nothing(world: World) -> None:
    world.manager.policy_wait_seconds = 0.05
    with pytest.raises(PolicyUnavailable, match=r"no policy for default/pod-c1 \(uid uid-1\)"):
        await world.manager.put(request(pod_uid="uid-1"))
    assert world.kernel.entries == {} and world.kernel.hooks == {} and world.kernel.policy == {}


async def test_a_policy_for_an_older_pod_of_the_same_name_is_not_used(world: World) -> None:
    world.policies.put(key(), endpoint_policy(uid="uid-old"))
    await world.settle()
    world.manager.policy_wait_seconds = 0.05
    with pytest.raises(PolicyUnavailable):
        await world.manager.put(request(pod_uid="uid-new"))
    world.manager.policy_wait_seconds = 1.0
    put = asyncio.create_task(world.manager.put(request(pod_uid="uid-new")))
    await asyncio.sleep(0.05)
    world.policies.put(key(), endpoint_policy(uid="uid-new"))
    await asyncio.wait_for(put, 2)
    # Later updates for the old uid (a stale writer) are not applied to the new pod.
    before = world.kernel.policy[10]
    world.policies.put(
        key(), endpoint_policy(uid="uid-old", ingress=(PolicyEntry(identity=0, protocol=0),))
    )
    await world.settle()
    assert world.kernel.policy[10] == before


async def test_a_registration_without_uid_takes_the_policy_of_its_name(world: World) -> None:
    world.policies.put(key(), endpoint_policy(uid="whatever"))
    await world.settle()
    await asyncio.wait_for(world.manager.put(request()), 2)
    assert 10 in world.kernel.policy


async def test_a_policy_change_is_one_flip_to_the_other_slot_then_the_old_one_cleared(
    world: World,
) -> None:
    first = (PolicyEntry(identity=2001, protocol=17, port=53, cookie=5),)
    world.policies.put(key(), endpoint_policy(ingress=first))
    await world.manager.put(request(pod_uid="uid-1"))
    await world.settle()
    world.kernel.flip_log.clear()
    allow = (PolicyEntry(identity=2000, protocol=6, port=80, cookie=4),)
    revision = world.policies.put(key(), endpoint_policy(ingress=allow))
    await world.settle()
    assert world.kernel.flip_log == [(10, "flip", 1), (10, "finish", 1)]
    held = world.kernel.policy[10]
    assert held.slot == 1 and len(held.rows) == 1 and not held.leftovers
    assert world.sync.policy_cursor.applied == revision
    # The same value again changes nothing.
    world.kernel.flip_log.clear()
    world.policies.put(key(), endpoint_policy(ingress=allow))
    await world.settle()
    assert world.kernel.flip_log == []


async def test_a_deleted_policy_leaves_the_endpoint_as_protected_as_it_was(world: World) -> None:
    world.policies.put(key(), endpoint_policy())
    await world.manager.put(request(pod_uid="uid-1"))
    held = world.kernel.policy[10]
    world.policies.put(key(), None)
    await world.settle()
    assert world.kernel.policy[10] == held  # never flushed
    assert await world.manager.delete("c1")
    assert 10 not in world.kernel.policy  # gone with its endpoint


async def test_policy_for_an_ifindex_no_endpoint_holds_is_removed(world: World) -> None:
    from weir_node_loader import policy

    stray = policy.plan(policy.compile_policy(endpoint_policy()), None)
    assert stray is not None
    world.kernel.flip_policy(11, stray)
    world.ipcache.put("10.0.0.0/8", None)  # any change triggers a pass
    await world.settle()
    assert 11 not in world.kernel.policy


async def test_ipcache_is_this_nodes_view_and_follows_kv(world: World) -> None:
    mine = IPCacheEntry(
        prefix="172.18.0.2/32", identity=Reserved.REMOTE_NODE, kind=IPCacheKind.NODE, node=NODE
    )
    theirs = replace(mine, prefix="172.18.0.3/32", node="node-2")
    block = IPCacheEntry(prefix="10.0.0.0/8", identity=(1 << 24) | 1, kind=IPCacheKind.CIDR)
    for e in (mine, theirs, block):
        world.ipcache.put(e.prefix, e)
    await world.settle()
    main = world.kernel.ipcache_main
    assert main["172.18.0.2/32"] == Value(Reserved.HOST, K.NODE)
    assert main["172.18.0.3/32"] == Value(Reserved.REMOTE_NODE, K.NODE)
    assert main["169.254.1.1/32"].identity == Reserved.HOST
    assert set(world.kernel.ipcache_cidr) == {"10.0.0.0/8"}
    revision = world.ipcache.put(block.prefix, None)
    await world.settle()
    assert "10.0.0.0/8" not in main and world.kernel.ipcache_cidr == {}
    assert world.sync.ipcache_cursor.applied == revision
    assert world.sync.remote_entry("172.18.0.3") == theirs


async def test_without_required_policy_a_pod_registers_and_gets_it_later(world: World) -> None:
    world.manager.require_policy = False
    await asyncio.wait_for(world.manager.put(request(pod_uid="uid-1")), 1)
    assert 10 not in world.kernel.policy and 10 in world.kernel.entries
    world.policies.put(key(), endpoint_policy())
    await world.settle()
    assert world.kernel.policy[10].config is not None
