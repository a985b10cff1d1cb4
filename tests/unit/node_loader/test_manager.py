"""EndpointManager over a fake kernel and a fake KV: the order and the idempotence of changes."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from weir_node_loader.endpoints import InvalidRequest
from weir_node_loader.kernel import KernelError
from weir_node_loader.manager import EndpointManager, NotReady, StoreUnavailable
from weir_node_loader.maps import Direction
from weir_node_loader.metrics import Metrics

from tests.unit.node_loader.fakes import NODE, FakeKernel, FakeStore, record, request


def make() -> tuple[EndpointManager, FakeKernel, FakeStore, CollectorRegistry]:
    kernel, store, registry = FakeKernel(), FakeStore(), CollectorRegistry()
    kernel.add_veth(10, "wrc1")
    kernel.add_veth(11, "wrc2")
    manager = EndpointManager(node=NODE, kernel=kernel, store=store, metrics=Metrics(registry))
    return manager, kernel, store, registry


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def started() -> tuple[EndpointManager, FakeKernel, FakeStore, CollectorRegistry]:
    m, k, s, r = make()
    await m.reconcile()
    return m, k, s, r


async def test_registrations_wait_for_the_first_reconcile() -> None:
    manager, *_ = make()
    with pytest.raises(NotReady):
        await manager.put(request())
    await manager.reconcile()
    assert manager.ready


async def test_put_writes_maps_then_hooks_then_kv() -> None:
    manager, kernel, store, registry = await started()
    kernel.calls.clear()
    rec = await manager.put(request())
    assert kernel.calls == ["links", "write_endpoint", "attach"]
    assert kernel.entries[10] == rec and kernel.hooks[10] == dict.fromkeys(Direction, "current")
    assert store.data == {"c1": rec}
    assert metric(registry, "weir_node_loader_endpoint_registrations_total", outcome="created") == 1
    assert metric(registry, "weir_node_loader_endpoints") == 1


async def test_the_same_put_again_changes_nothing_and_writes_no_kv() -> None:
    manager, kernel, store, registry = await started()
    await manager.put(request())
    kernel.count(10, 5)
    writes = store.writes
    await manager.put(request())
    assert store.writes == writes
    assert kernel.stats[10].from_pod.packets == 5  # counters untouched
    assert (
        metric(registry, "weir_node_loader_endpoint_registrations_total", outcome="unchanged") == 1
    )


async def test_a_put_on_a_new_veth_moves_the_endpoint() -> None:
    manager, kernel, store, _ = await started()
    await manager.put(request())
    moved = await manager.put(request(host_ifindex=11, host_ifname="wrc2"))
    assert 10 not in kernel.entries and 10 not in kernel.hooks
    assert kernel.entries[11] == moved and store.data["c1"] == moved


async def test_an_invalid_or_conflicting_put_changes_nothing() -> None:
    manager, kernel, store, _ = await started()
    await manager.put(request())
    with pytest.raises(InvalidRequest, match=r"IP 10\.244\.1\.2 already belongs"):
        await manager.put(request("c2", 11, host_ifname="wrc2"))
    with pytest.raises(InvalidRequest):
        await manager.put(request("c3", 99))
    assert set(kernel.entries) == {10} and set(store.data) == {"c1"}


async def test_a_kernel_failure_on_a_new_endpoint_rolls_it_back() -> None:
    manager, kernel, store, registry = await started()
    kernel.fail["attach"] = KernelError("netlink", "boom")
    with pytest.raises(KernelError):
        await manager.put(request())
    assert kernel.entries == {} and store.data == {} and manager.get("c1") is None
    assert metric(registry, "weir_node_loader_datapath_errors_total", reason="netlink") == 1


async def test_kv_down_leaves_the_datapath_and_a_retry_publishes() -> None:
    manager, kernel, store, _ = await started()
    store.down = True
    with pytest.raises(StoreUnavailable, match="is programmed"):
        await manager.put(request())
    assert 10 in kernel.entries and manager.get("c1") is not None
    store.down = False
    await manager.put(request())  # the CNI plugin retries the same ADD
    assert "c1" in store.data


async def test_delete_removes_everything_and_is_idempotent() -> None:
    manager, kernel, store, registry = await started()
    await manager.put(request())
    assert await manager.delete("c1") is True
    assert kernel.entries == {} and kernel.hooks == {} and kernel.stats == {} and store.data == {}
    assert await manager.delete("c1") is False
    assert metric(registry, "weir_node_loader_endpoint_deletions_total") == 1
    assert metric(registry, "weir_node_loader_endpoints") == 0


async def test_delete_after_the_veth_is_gone() -> None:
    manager, kernel, store, _ = await started()
    await manager.put(request())
    kernel.del_veth(10)
    assert await manager.delete("c1") is True
    assert kernel.entries == {} and store.data == {}


async def test_a_delete_whose_kv_delete_failed_is_never_revived() -> None:
    manager, kernel, store, _ = await started()
    await manager.put(request())
    store.down = True
    with pytest.raises(StoreUnavailable):
        await manager.delete("c1")
    store.down = False
    report = await manager.reconcile()  # the KV key is still there, and so is the veth
    assert report.removed == 1 and store.data == {} and kernel.entries == {}


async def test_restart_re_adopts_intact_endpoints_without_touching_them() -> None:
    manager, kernel, store, _ = await started()
    await manager.put(request())
    kernel.count(10, 7)
    writes = store.writes
    # A new process: same kernel, same KV, empty registry.
    fresh = EndpointManager(
        node=NODE, kernel=kernel, store=store, metrics=Metrics(CollectorRegistry())
    )
    kernel.calls.clear()
    report = await fresh.reconcile()
    assert (report.adopted, report.repaired, report.removed) == (1, 0, 0)
    assert "remove_endpoint" not in kernel.calls
    assert kernel.stats[10].from_pod.packets == 7 and store.writes == writes
    assert fresh.get("c1") == record()


async def test_restart_replaces_programs_of_another_build() -> None:
    manager, kernel, _, registry = await started()
    await manager.put(request())
    kernel.hooks[10] = dict.fromkeys(Direction, "old")
    report = await manager.reconcile()
    assert report.repaired == 1 and kernel.hooks[10] == dict.fromkeys(Direction, "current")
    assert (
        metric(
            registry,
            "weir_node_loader_hook_attachments_total",
            direction="from_pod",
            outcome="replaced",
        )
        == 1
    )


async def test_restart_cleans_up_a_veth_removed_while_down() -> None:
    manager, kernel, store, registry = await started()
    await manager.put(request())
    await manager.put(request("c2", 11, "10.244.1.3", host_ifname="wrc2"))
    kernel.del_veth(11)
    report = await manager.reconcile()
    assert (report.adopted, report.removed) == (1, 1)
    assert set(kernel.entries) == {10} and set(store.data) == {"c1"}
    assert manager.get("c2") is None
    assert metric(registry, "weir_node_loader_reconcile_actions_total", action="removed") == 1


async def test_restart_repairs_a_registration_that_crashed_before_kv() -> None:
    manager, _, store, _ = await started()
    await manager.put(request())
    store.data.clear()  # as if the process died between the hooks and the KV write
    report = await manager.reconcile()
    assert report.repaired == 1 and store.data == {"c1": record()}


async def test_a_failing_action_does_not_stop_the_others() -> None:
    manager, kernel, _, _ = await started()
    await manager.put(request())
    await manager.put(request("c2", 11, "10.244.1.3", host_ifname="wrc2"))
    kernel.hooks[10] = {}
    kernel.hooks[11] = {}
    kernel.fail["attach"] = KernelError("netlink", "busy")
    report = await manager.reconcile()
    assert len(report.errors) == 2 and manager.ready
    assert {r.container_id for r in manager.registry.all()} == {"c1", "c2"}
    del kernel.fail["attach"]
    report = await manager.reconcile()
    assert report.repaired == 2 and not report.errors
