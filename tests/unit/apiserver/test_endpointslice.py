"""EndpointSlice computation (pure) and the controller driving it through the API."""

from __future__ import annotations

from typing import Any

from weir_local.apiserver.config import Config
from weir_local.apiserver.controllers.endpointslice import EndpointSliceController
from weir_local.apiserver.controllers.slices import (
    CONTROLLER_NAME,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    plan_slices,
)
from weir_local.apiserver.state import ApiServerState


def service(
    name: str = "web", ports: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"}},
        "spec": {
            "selector": {"app": name},
            "ports": ports
            if ports is not None
            else [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            **spec,
        },
    }


def pod(
    name: str,
    ip: str = "10.0.0.1",
    *,
    port: int = 8080,
    port_name: str = "http",
    ready: bool = True,
    node: str = "n1",
    deleting: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "labels": {"app": "web"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}],
        },
        "status": {
            "phase": phase,
            "podIP": ip,
            "podIPs": [{"ip": ip}] if ip else [],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def named(slices: list[dict[str, Any]], prefix: str = "web-") -> list[dict[str, Any]]:
    """Give planned creates names, as the API would."""
    for i, s in enumerate(slices):
        s["metadata"]["name"] = f"{prefix}{i:05d}"
        s["metadata"].pop("generateName", None)
    return slices


def test_one_endpoint_per_ready_pod_with_resolved_ports_labels_and_owner() -> None:
    plan = plan_slices(service(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")], {"n1": "z1"}, [])
    assert len(plan.create) == 1 and not plan.update and not plan.delete
    s = plan.create[0]
    assert s["metadata"]["generateName"] == "web-"
    assert s["metadata"]["labels"] == {
        "team": "a",
        SERVICE_NAME_LABEL: "web",
        MANAGED_BY_LABEL: CONTROLLER_NAME,
    }
    assert s["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "web",
            "uid": "svc-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert s["addressType"] == "IPv4"
    assert s["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    assert s["endpoints"][0] == {
        "addresses": ["10.0.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": "n1",
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
        "zone": "z1",
    }


def test_pods_resolving_a_named_port_differently_go_in_different_slices() -> None:
    pods = [pod("a", "10.0.0.1", port=8080), pod("b", "10.0.0.2", port=9090)]
    plan = plan_slices(service(), pods, {}, [])
    by_port = {s["ports"][0]["port"]: s for s in plan.create}
    assert sorted(by_port) == [8080, 9090]
    assert [e["targetRef"]["name"] for e in by_port[9090]["endpoints"]] == ["b"]


def test_pods_without_ip_terminal_or_unresolvable_are_left_out() -> None:
    pods = [
        pod("noip", ""),
        pod("done", "10.0.0.3", phase="Succeeded"),
        pod("failed", "10.0.0.4", phase="Failed"),
        pod("other-port-name", "10.0.0.5", port_name="metrics"),
        pod("ok", "10.0.0.6"),
    ]
    plan = plan_slices(service(), pods, {}, [])
    assert [e["targetRef"]["name"] for s in plan.create for e in s["endpoints"]] == ["ok"]


def test_numeric_target_port_needs_no_container_port() -> None:
    svc = service(ports=[{"port": 80, "targetPort": 9376, "protocol": "UDP"}])
    plan = plan_slices(svc, [pod("a", port_name="x")], {}, [])
    assert plan.create[0]["ports"] == [{"name": "", "protocol": "UDP", "port": 9376}]


def test_ready_serving_terminating_conditions() -> None:
    pods = [
        pod("ready"),
        pod("notready", "10.0.0.2", ready=False),
        pod("term", "10.0.0.3", deleting=True),
        pod("term-notready", "10.0.0.4", deleting=True, ready=False),
    ]
    conds = {
        e["targetRef"]["name"]: e["conditions"]
        for e in plan_slices(service(), pods, {}, []).create[0]["endpoints"]
    }
    assert conds == {
        "ready": {"ready": True, "serving": True, "terminating": False},
        "notready": {"ready": False, "serving": False, "terminating": False},
        "term": {"ready": False, "serving": True, "terminating": True},
        "term-notready": {"ready": False, "serving": False, "terminating": True},
    }
    published = plan_slices(service(publishNotReadyAddresses=True), pods, {}, []).create[0]
    assert all(e["conditions"]["ready"] for e in published["endpoints"])


def test_more_than_100_endpoints_split_and_existing_slices_are_reused() -> None:
    pods = [pod(f"p{i:03d}", f"10.0.{i // 250}.{i % 250 + 1}") for i in range(250)]
    plan = plan_slices(service(), pods, {}, [])
    assert [len(s["endpoints"]) for s in plan.create] == [100, 100, 50]
    existing = named(plan.create)
    assert plan_slices(service(), pods, {}, existing).empty()  # level-triggered: no writes
    # One pod goes away and a new one comes: only the affected slices are rewritten.
    changed = [p for p in pods if p["metadata"]["name"] != "p005"] + [pod("new", "10.9.9.9")]
    plan = plan_slices(service(), changed, {}, existing)
    assert not plan.create and not plan.delete
    assert [s["metadata"]["name"] for s in plan.update] == ["web-00000"]
    names = [e["targetRef"]["name"] for e in plan.update[0]["endpoints"]]
    assert "p005" not in names and "new" in names and len(names) == 100


def test_a_service_selecting_nothing_keeps_one_empty_slice_and_extra_slices_go() -> None:
    existing = named(plan_slices(service(), [pod("a"), pod("b", port=9)], {}, []).create)
    assert len(existing) == 2
    plan = plan_slices(service(), [], {}, existing)
    assert [s["metadata"]["name"] for s in plan.update] == ["web-00000"]
    assert plan.update[0]["endpoints"] == [] and plan.update[0]["ports"] == []
    assert plan.delete == ["web-00001"]


def test_slices_not_managed_by_the_controller_are_never_touched() -> None:
    foreign = {
        "metadata": {"name": "web-manual", "labels": {SERVICE_NAME_LABEL: "web"}},
        "endpoints": [],
        "ports": [],
        "addressType": "IPv4",
    }
    plan = plan_slices(service(), [pod("a")], {}, [foreign])
    assert len(plan.create) == 1 and not plan.update and not plan.delete


# ---- the controller, through the API ------------------------------------------------------------


def api_state() -> tuple[ApiServerState, EndpointSliceController]:
    st = ApiServerState(Config())
    st.api.create(st.resources.by_key("namespaces"), "", {"metadata": {"name": "ns"}})
    c = next(c for c in st.controllers if isinstance(c, EndpointSliceController))
    return st, c


def run_dirty(c: EndpointSliceController) -> set[tuple[str, str]]:
    keys = set(c._dirty)
    for key in sorted(keys):
        c.sync(*key)
    c._dirty.clear()
    return keys


def slices(st: ApiServerState) -> list[dict[str, Any]]:
    return [e.obj for e in st.store.sorted_entries("endpointslices.discovery.k8s.io", "ns")]


def create_pod(st: ApiServerState, name: str, labels: dict[str, str], ip: str) -> None:
    pods = st.resources.by_key("pods")
    body = {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 8080}]}
            ]
        },
    }
    st.api.create(pods, "ns", body)
    status = {
        "status": {
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }
    import orjson

    st.api.patch(pods, "ns", name, "merge", orjson.dumps(status), subresource="status")


def test_controller_follows_services_and_only_their_pods() -> None:
    st, c = api_state()
    svcs = st.resources.by_key("services")
    body = service()
    body["metadata"] = {"name": "web"}
    st.api.create(svcs, "ns", body)
    other = service("db")
    other["metadata"] = {"name": "db"}
    st.api.create(svcs, "ns", other)
    run_dirty(c)
    create_pod(st, "a", {"app": "web"}, "10.0.0.1")
    assert run_dirty(c) == {("ns", "web")}  # the db Service is not recomputed
    web = [s for s in slices(st) if s["metadata"]["labels"][SERVICE_NAME_LABEL] == "web"]
    assert len(web) == 1 and web[0]["endpoints"][0]["addresses"] == ["10.0.0.1"]
    rv = st.store.rv
    c.sync("ns", "web")
    assert st.store.rv == rv  # nothing changed: nothing written
    # A pod that leaves the selector is removed from the slice.
    st.api.patch(
        st.resources.by_key("pods"), "ns", "a", "merge", b'{"metadata":{"labels":{"app":"x"}}}'
    )
    assert run_dirty(c) == {("ns", "web")}
    web = [s for s in slices(st) if s["metadata"]["labels"][SERVICE_NAME_LABEL] == "web"]
    assert web[0]["endpoints"] == []
    # Losing the selector, then the Service, removes its slices.
    st.api.patch(svcs, "ns", "db", "merge", b'{"spec":{"selector":null}}')
    run_dirty(c)
    assert all(s["metadata"]["labels"][SERVICE_NAME_LABEL] == "web" for s in slices(st))
    st.api.delete(svcs, "ns", "web")
    run_dirty(c)
    assert slices(st) == []


def test_controller_repairs_a_deleted_managed_slice() -> None:
    st, c = api_state()
    body = service()
    body["metadata"] = {"name": "web"}
    st.api.create(st.resources.by_key("services"), "ns", body)
    run_dirty(c)
    (only,) = slices(st)
    st.api.delete(
        st.resources.by_key("endpointslices.discovery.k8s.io"), "ns", only["metadata"]["name"]
    )
    run_dirty(c)
    assert len(slices(st)) == 1


def test_deleting_a_service_takes_its_slices_in_the_same_request() -> None:
    st, c = api_state()
    body = service()
    body["metadata"] = {"name": "web"}
    st.api.create(st.resources.by_key("services"), "ns", body)
    run_dirty(c)
    assert len(slices(st)) == 1
    st.api.delete(st.resources.by_key("services"), "ns", "web")
    assert slices(st) == []  # garbage-collected through the owner reference, not later
