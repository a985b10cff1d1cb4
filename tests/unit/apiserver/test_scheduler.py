"""The scheduler: its pure rules (tolerations, readiness, selectors, messages) and the
controller binding pods through the API."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from weir_local.apiserver.config import Config
from weir_local.apiserver.controllers.scheduler import (
    SchedulerController,
    Taint,
    node_view,
    pick,
    tolerates,
    unfit_reason,
    unschedulable_message,
)
from weir_local.apiserver.state import ApiServerState

AGENT = "node.weir.io/agent-not-ready"


def node(
    name: str,
    *,
    ready: str | None = "True",
    taints: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    conds = [] if ready is None else [{"type": "Ready", "status": ready}]
    spec: dict[str, Any] = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"conditions": conds},
    }


# ---- pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, ("k", "v"), True),
        ({"key": "k", "value": "v"}, ("k", "v"), True),  # Equal is the default; any effect
        ({"key": "k", "value": "x"}, ("k", "v"), False),
        ({"key": "k", "operator": "Exists"}, ("k", "v"), True),
        ({"key": "other", "operator": "Exists"}, ("k", "v"), False),
        ({"operator": "Exists"}, ("anything", "v"), True),  # empty key + Exists: everything
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, ("k", "v"), False),
        ({"key": "k", "operator": "Equal"}, ("k", ""), True),  # empty value equals empty
        ({"key": "k", "operator": "Lt", "value": "3"}, ("k", "2"), False),  # unknown operator
    ],
)
def test_toleration_semantics(
    toleration: dict[str, str], taint: tuple[str, str], expected: bool
) -> None:
    assert tolerates(toleration, Taint(taint[0], taint[1], "NoSchedule")) is expected


def test_node_view_keeps_filtering_taints_and_adds_the_readiness_taint() -> None:
    taints = [
        {"key": "a", "effect": "NoSchedule"},
        {"key": "b", "effect": "PreferNoSchedule"},  # never filters
        {"key": "c", "value": "x", "effect": "NoExecute"},
    ]
    assert node_view(node("n", taints=taints)).taints == (
        Taint("a", "", "NoSchedule"),
        Taint("c", "x", "NoExecute"),
    )
    assert node_view(node("n", ready="False")).taints == (
        Taint("node.kubernetes.io/not-ready", "", "NoSchedule"),
    )
    assert node_view(node("n", ready=None)).taints == (
        Taint("node.kubernetes.io/unreachable", "", "NoSchedule"),
    )
    assert node_view(node("n", ready="Unknown")).taints[0].key == "node.kubernetes.io/unreachable"


def test_unfit_reasons_in_filter_order() -> None:
    spec: dict[str, Any] = {"nodeSelector": {"disk": "ssd"}}
    assert unfit_reason(spec, node_view(node("n", unschedulable=True))) == (
        "node(s) were unschedulable"
    )
    tainted = node_view(node("n", taints=[{"key": AGENT, "effect": "NoSchedule"}]))
    assert unfit_reason(spec, tainted) == f"node(s) had untolerated taint {{{AGENT}: }}"
    assert unfit_reason(spec, node_view(node("n"))) == (
        "node(s) didn't match Pod's node affinity/selector"
    )
    assert unfit_reason(spec, node_view(node("n", labels={"disk": "ssd"}))) is None
    # Tolerating the unschedulable taint, or the readiness taint, lets the pod through.
    tolerant = {"tolerations": [{"operator": "Exists"}]}
    assert unfit_reason(tolerant, node_view(node("n", unschedulable=True, ready="False"))) is None


def test_required_node_affinity_terms() -> None:
    def spec(*terms: dict[str, Any]) -> dict[str, Any]:
        return {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": list(terms)
                    }
                }
            }
        }

    n = node_view(node("n1", labels={"zone": "a", "cores": "8"}))
    zone_b = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    many = {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}
    no_gpu = {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}
    assert unfit_reason(spec(zone_b), n) is not None
    assert unfit_reason(spec(zone_b, by_name), n) is None  # terms are ORed
    gpu = {"key": "gpu", "operator": "Exists"}
    both = {"matchExpressions": [*many["matchExpressions"], gpu]}
    assert unfit_reason(spec(both), n) is not None  # inside a term, requirements are ANDed
    assert unfit_reason(spec(many), n) is None and unfit_reason(spec(no_gpu), n) is None
    assert unfit_reason(spec({}), n) is not None  # an empty term matches nothing


def test_message_matches_kube_scheduler() -> None:
    taint = [{"key": AGENT, "effect": "NoSchedule"}]
    nodes = [node_view(node("a", taints=taint)), node_view(node("b", taints=taint))]
    assert pick(nodes, {}, "") == (
        None,
        f"0/2 nodes are available: 2 node(s) had untolerated taint {{{AGENT}: }}.",
    )
    assert unschedulable_message(
        3, ["node(s) were unschedulable", "x", "node(s) were unschedulable"]
    ) == ("0/3 nodes are available: 1 x, 2 node(s) were unschedulable.")
    assert unschedulable_message(0, []) == "no nodes available to schedule pods"


def test_pick_is_round_robin_over_fitting_nodes() -> None:
    nodes = [node_view(node(n)) for n in ("a", "b", "c")]
    nodes[1] = node_view(node("b", unschedulable=True))
    chosen, last = [], ""
    for _ in range(4):
        last = pick(nodes, {}, last)[0] or ""
        chosen.append(last)
    assert chosen == ["a", "c", "a", "c"]


# ---- the controller through the API ---------------------------------------------------------


def cluster() -> tuple[ApiServerState, SchedulerController]:
    st = ApiServerState(Config())
    st.api.create(st.resources.by_key("namespaces"), "", {"metadata": {"name": "ns"}})
    c = next(c for c in st.controllers if isinstance(c, SchedulerController))
    c.resync_all()
    return st, c


def add_node(st: ApiServerState, name: str, **kw: Any) -> None:
    obj = node(name, **kw)
    status = obj.pop("status")
    nodes = st.resources.by_key("nodes")
    st.api.create(nodes, "", obj)
    st.api.patch(nodes, "", name, "merge", orjson.dumps({"status": status}), subresource="status")


def patch_node(st: ApiServerState, name: str, body: dict[str, Any], status: bool = False) -> None:
    st.api.patch(
        st.resources.by_key("nodes"),
        "",
        name,
        "merge",
        orjson.dumps(body),
        subresource="status" if status else "",
    )


def add_pod(st: ApiServerState, name: str, **spec: Any) -> None:
    body = {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "i"}], **spec},
    }
    st.api.create(st.resources.by_key("pods"), "ns", body)


def drain(c: SchedulerController) -> list[tuple[str, str]]:
    """What `run` does for the dirty pods, synchronously; returns the keys examined."""
    seen = []
    while c._dirty:
        batch = c._ordered(c._dirty)
        c._dirty.clear()
        for key in batch:
            c.schedule(*key)
            seen.append(key)
    return seen


def pod(st: ApiServerState, name: str) -> dict[str, Any]:
    entry = st.store.get("pods", "ns", name)
    assert entry is not None
    return entry.obj


def scheduled(st: ApiServerState, name: str) -> dict[str, Any]:
    conds = pod(st, name)["status"].get("conditions") or []
    return next(c for c in conds if c["type"] == "PodScheduled")


def events(st: ApiServerState, reason: str) -> list[dict[str, Any]]:
    return [e.obj for e in st.store.entries("events", "ns") if e.obj["reason"] == reason]


def test_binds_round_robin_through_the_binding_path() -> None:
    st, c = cluster()
    for n in ("n1", "n2", "n3"):
        add_node(st, n)
    for i in range(6):
        add_pod(st, f"p{i}")
    drain(c)
    placed = [pod(st, f"p{i}")["spec"]["nodeName"] for i in range(6)]
    assert placed == ["n1", "n2", "n3", "n1", "n2", "n3"]
    assert scheduled(st, "p0")["status"] == "True"  # the binding path set it
    assert len(events(st, "Scheduled")) == 6
    assert events(st, "Scheduled")[0]["message"].startswith("Successfully assigned ns/p")
    assert c.binds == 6 and not c._pending


def test_unschedulable_pod_waits_and_is_retried_when_a_node_changes() -> None:
    st, c = cluster()
    taint = [{"key": AGENT, "effect": "NoSchedule"}]
    add_node(st, "n1", taints=taint)
    add_node(st, "n2", taints=taint)
    add_pod(st, "p")
    drain(c)
    cond = scheduled(st, "p")
    assert "nodeName" not in pod(st, "p")["spec"]
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == (
        f"0/2 nodes are available: 2 node(s) had untolerated taint {{{AGENT}: }}."
    )
    assert len(events(st, "FailedScheduling")) == 1
    # A heartbeat changes nothing the scheduler reads: nothing is re-examined or written.
    rv = st.store.rv
    beat = {"type": "Ready", "status": "True", "lastHeartbeatTime": "2030-01-01T00:00:00Z"}
    patch_node(st, "n1", {"status": {"conditions": [beat]}}, status=True)
    assert drain(c) == []
    assert st.store.rv == rv + 1
    # The same verdict again writes nothing (no status churn, no new event).
    c._dirty.add(("ns", "p"))
    drain(c)
    assert st.store.rv == rv + 1 and len(events(st, "FailedScheduling")) == 1
    # The agent removes its taint from n2: the pending pod is retried and bound there.
    patch_node(st, "n2", {"spec": {"taints": None}})
    assert drain(c) == [("ns", "p")]
    assert pod(st, "p")["spec"]["nodeName"] == "n2"
    assert scheduled(st, "p")["status"] == "True"


def test_node_selector_not_ready_and_unschedulable_nodes() -> None:
    st, c = cluster()
    add_node(st, "a", labels={"disk": "hdd"})
    add_node(st, "b", labels={"disk": "ssd"}, ready="False")
    add_node(st, "c", labels={"disk": "ssd"}, unschedulable=True)
    add_pod(st, "p", nodeSelector={"disk": "ssd"})
    drain(c)
    assert scheduled(st, "p")["message"] == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
        "1 node(s) were unschedulable."
    )
    patch_node(st, "b", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, True)
    drain(c)
    assert pod(st, "p")["spec"]["nodeName"] == "b"


def test_pod_spec_change_retries_and_other_pods_are_left_alone() -> None:
    st, c = cluster()
    add_node(st, "n1", taints=[{"key": "dedicated", "value": "db", "effect": "NoExecute"}])
    add_pod(st, "p")
    add_pod(st, "pinned", nodeName="elsewhere")  # already bound: not the scheduler's
    add_pod(st, "other", schedulerName="my-scheduler")  # another scheduler's pod
    drain(c)
    assert c._pending == {("ns", "p")}
    assert "conditions" not in pod(st, "other")["status"]
    # Tolerations may be added to a pending pod: that is a spec change, so it is retried.
    tol = {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}
    patch = {"spec": {"tolerations": [*pod(st, "p")["spec"]["tolerations"], tol]}}
    st.api.patch(st.resources.by_key("pods"), "ns", "p", "merge", orjson.dumps(patch))
    assert drain(c) == [("ns", "p")]
    assert pod(st, "p")["spec"]["nodeName"] == "n1"


def test_deleted_pending_pod_is_forgotten() -> None:
    st, c = cluster()
    add_pod(st, "p")
    rv = st.store.rv
    drain(c)
    assert st.store.rv == rv  # no nodes at all: the pod waits, nothing is written
    st.api.delete(st.resources.by_key("pods"), "ns", "p")
    assert not c._pending
    add_node(st, "n1")
    assert drain(c) == []


async def test_run_binds_pods_created_before_and_after_start() -> None:
    st = ApiServerState(Config())
    st.api.create(st.resources.by_key("namespaces"), "", {"metadata": {"name": "ns"}})
    add_node(st, "n1")
    add_pod(st, "early")
    c = next(c for c in st.controllers if isinstance(c, SchedulerController))
    task = asyncio.create_task(c.run())
    try:
        add_pod(st, "late")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if all(pod(st, n)["spec"].get("nodeName") for n in ("early", "late")):
                break
        assert pod(st, "early")["spec"]["nodeName"] == "n1"
        assert pod(st, "late")["spec"]["nodeName"] == "n1"
    finally:
        task.cancel()
