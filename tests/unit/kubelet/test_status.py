"""Pod status building and the no-op detection that keeps settled pods write-free."""

from __future__ import annotations

import copy
from typing import Any

from weir_local.kubelet.status import Observed, desired_status, event, status_patch

NOW = "2030-01-01T00:00:10Z"
LATER = "2030-01-01T00:05:00Z"


def pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": "u1", "namespace": "ns", "name": "web", "generation": 2},
        "spec": {"containers": [{"name": "a", "image": "img:1"}, {"name": "b", "image": "img:2"}]},
        "status": {"phase": "Pending", "qosClass": "BestEffort", **status},
    }


RUNNING = Observed(
    host_ip="172.18.0.2",
    pod_ips=("10.244.1.5",),
    start_time="2030-01-01T00:00:00Z",
    started_at="2030-01-01T00:00:01Z",
    ready=True,
)


def conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_running_status() -> None:
    st = desired_status(pod(), RUNNING, NOW)
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.244.1.5" and st["podIPs"] == [{"ip": "10.244.1.5"}]
    assert st["hostIP"] == "172.18.0.2" and st["hostIPs"] == [{"ip": "172.18.0.2"}]
    assert st["startTime"] == "2030-01-01T00:00:00Z"
    assert st["observedGeneration"] == 2
    c = conds(st)
    assert set(c) == {
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    }
    assert all(x["status"] == "True" and x["observedGeneration"] == 2 for x in c.values())
    a = st["containerStatuses"][0]
    assert a == {
        "name": "a",
        "image": "img:1",
        "imageID": "weir-local://img:1",
        "containerID": "weir://u1",
        "ready": True,
        "started": True,
        "restartCount": 0,
        "state": {"running": {"startedAt": "2030-01-01T00:00:01Z"}},
    }


def test_creating_and_terminating_status() -> None:
    creating = Observed(host_ip="172.18.0.2", start_time=NOW, waiting_message="cni says no")
    st = desired_status(pod(), creating, NOW)
    assert st["phase"] == "Pending" and "podIP" not in st
    assert st["containerStatuses"][1]["state"] == {
        "waiting": {"reason": "ContainerCreating", "message": "cni says no"}
    }
    c = conds(st)
    assert c["PodReadyToStartContainers"]["status"] == "False"
    assert c["Ready"]["reason"] == "ContainersNotReady"
    assert c["Ready"]["message"] == "containers with unready status: [a b]"
    terminating = desired_status(pod(), Observed(**{**_fields(RUNNING), "ready": False}), NOW)
    assert terminating["phase"] == "Running"
    assert conds(terminating)["Ready"]["status"] == "False"
    assert not terminating["containerStatuses"][0]["ready"]


def _fields(obs: Observed) -> dict[str, Any]:
    return {k: getattr(obs, k) for k in Observed.__slots__}


def test_a_settled_pod_needs_no_write_and_transition_times_are_kept() -> None:
    p = pod(conditions=[{"type": "PodScheduled", "status": "True", "lastTransitionTime": "T0"}])
    body = status_patch(p, desired_status(p, RUNNING, NOW))
    assert body is not None and body["metadata"] == {"uid": "u1"}
    # What the API server would store: the patch applied, nulls and empty objects dropped.
    stored = copy.deepcopy(p)
    stored["status"].update(body["status"])
    assert conds(stored["status"])["PodScheduled"]["lastTransitionTime"] == "T0"
    # Later, nothing changed: no write, even though "now" moved on.
    assert status_patch(stored, desired_status(stored, RUNNING, LATER)) is None
    # Readiness drops: only then a write, with a new transition time for what changed.
    not_ready = Observed(**{**_fields(RUNNING), "ready": False})
    body = status_patch(stored, desired_status(stored, not_ready, LATER))
    assert body is not None
    c = conds(body["status"])
    assert c["Ready"]["lastTransitionTime"] == LATER
    assert c["Initialized"]["lastTransitionTime"] == NOW


def test_foreign_conditions_are_kept_and_stale_fields_removed() -> None:
    p = pod(
        podIP="10.244.1.9",
        podIPs=[{"ip": "10.244.1.9"}],
        conditions=[{"type": "example.com/gate", "status": "True"}],
        startTime="2029-12-31T00:00:00Z",
    )
    creating = Observed(host_ip="172.18.0.2", start_time=NOW)
    body = status_patch(p, desired_status(p, creating, NOW))
    assert body is not None
    st = body["status"]
    assert {"type": "example.com/gate", "status": "True"} in st["conditions"]
    assert st["podIP"] is None and st["podIPs"] is None  # merge patch: removed
    assert st["startTime"] == "2029-12-31T00:00:00Z"  # set once, kept


def test_init_containers_completed_and_sidecars_running() -> None:
    p = pod()
    p["spec"]["initContainers"] = [
        {"name": "setup", "image": "i"},
        {"name": "proxy", "image": "s", "restartPolicy": "Always"},
    ]
    inits = desired_status(p, RUNNING, NOW)["initContainerStatuses"]
    assert inits[0]["state"]["terminated"]["reason"] == "Completed"
    assert inits[0]["state"]["terminated"]["exitCode"] == 0
    assert inits[1]["state"] == {"running": {"startedAt": "2030-01-01T00:00:01Z"}}


def test_event_names_the_pod_and_the_node() -> None:
    ev = event(pod(), type_="Warning", reason="FailedCreatePodSandBox", message="m", node="n1",
               now=NOW)  # fmt: skip
    assert ev["metadata"]["name"].startswith("web.")
    assert ev["involvedObject"] == {
        "kind": "Pod",
        "apiVersion": "v1",
        "namespace": "ns",
        "name": "web",
        "uid": "u1",
    }
    assert ev["source"] == {"component": "kubelet", "host": "n1"}
    assert ev["count"] == 1 and ev["type"] == "Warning"
