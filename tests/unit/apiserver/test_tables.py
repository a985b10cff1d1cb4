"""Server-side printing: columns, cells and ages as kubectl shows them."""

from __future__ import annotations

from typing import Any

import pytest
from weir_local.apiserver import tables

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
CREATED = "2027-01-15T07:58:00Z"  # 2 minutes before NOW


def names(kind: str, wide: bool = True) -> list[str]:
    return [c["name"] for c in tables.columns_for(kind) if wide or c["priority"] == 0]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_columns_match_kubectl() -> None:
    assert names("Pod", wide=False) == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert names("Pod") == [
        *names("Pod", wide=False),
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert names("Service") == [
        "Name",
        "Type",
        "Cluster-IP",
        "External-IP",
        "Port(s)",
        "Age",
        "Selector",
    ]
    assert names("Node", wide=False) == ["Name", "Status", "Roles", "Age", "Version"]
    assert names("Node")[5:] == [
        "Internal-IP",
        "External-IP",
        "OS-Image",
        "Kernel-Version",
        "Container-Runtime",
    ]
    assert names("Namespace") == ["Name", "Status", "Age"]
    assert names("EndpointSlice") == ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert names("NetworkPolicy") == ["Name", "Pod-Selector", "Age"]
    assert names("Event", wide=False) == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert tables.columns_for("Pod")[0]["format"] == "name"


def pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "creationTimestamp": CREATED},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
        "status": status,
    }


def test_pod_rows() -> None:
    running = pod(
        phase="Running",
        podIPs=[{"ip": "10.0.0.5"}],
        containerStatuses=[
            {"name": "a", "ready": True, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"finishedAt": "2027-01-15T07:59:00Z"}}},
            {"name": "b", "ready": True, "restartCount": 2, "state": {"running": {}}},
        ],
    )  # fmt: skip
    assert tables.pod_row(running, NOW) == [
        "p", "2/2", "Running", "3 (60s ago)", "2m", "10.0.0.5", "n1", "<none>", "<none>",
    ]  # fmt: skip
    waiting = pod(
        phase="Pending",
        containerStatuses=[{"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
    )
    assert tables.pod_row(waiting, NOW)[1:3] == ["0/2", "CrashLoopBackOff"]
    pending = pod(phase="Pending")
    assert tables.pod_row(pending, NOW)[1:6] == ["0/2", "Pending", "0", "2m", "<none>"]
    terminating = pod(phase="Running")
    terminating["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:30Z"
    assert tables.pod_row(terminating, NOW)[2] == "Terminating"
    done = pod(phase="Succeeded")
    done["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:30Z"
    assert tables.pod_row(done, NOW)[2] == "Succeeded"
    init = pod(phase="Pending", initContainerStatuses=[{"name": "i", "state": {"waiting": {}}}])
    init["spec"]["initContainers"] = [{"name": "i"}]
    assert tables.pod_row(init, NOW)[2] == "Init:0/1"


def test_service_rows() -> None:
    svc = {
        "metadata": {"name": "web", "creationTimestamp": CREATED},
        "spec": {
            "type": "NodePort",
            "clusterIPs": ["10.96.0.10"],
            "ports": [
                {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP"},
            ],
            "selector": {"b": "2", "a": "1"},
        },
    }
    assert tables.service_row(svc, NOW) == [
        "web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "2m", "a=1,b=2",
    ]  # fmt: skip
    lb = {
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"]},
    }
    assert tables.service_row(lb, NOW)[3:5] == ["<pending>", "<none>"]
    ext = {"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "a.b"}}
    assert tables.service_row(ext, NOW)[2:4] == ["<none>", "a.b"]


def test_node_namespace_slice_policy_event_rows() -> None:
    node = {
        "metadata": {
            "name": "n1",
            "creationTimestamp": CREATED,
            "labels": {"node-role.kubernetes.io/control-plane": ""},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.35.0", "kernelVersion": "6.18"},
        },
    }
    assert tables.node_row(node, NOW) == [
        "n1", "Ready,SchedulingDisabled", "control-plane", "2m", "v1.35.0",
        "172.18.0.2", "<none>", "<unknown>", "6.18", "<unknown>",
    ]  # fmt: skip
    ns = {"metadata": {"name": "x", "creationTimestamp": CREATED}, "status": {"phase": "Active"}}
    assert tables.namespace_row(ns, NOW) == ["x", "Active", "2m"]
    eps = {
        "metadata": {"name": "web-abcde", "creationTimestamp": CREATED},
        "addressType": "IPv4",
        "ports": [{"port": 80}, {"name": "x"}, {}, {"port": 1}],
        "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(5)],
    }
    assert tables.endpointslice_row(eps, NOW) == [
        "web-abcde", "IPv4", "80,x,* + 1 more...",
        "10.0.0.0,10.0.0.1,10.0.0.2 + 2 more...", "2m",
    ]  # fmt: skip
    empty = {"metadata": {"name": "e"}, "addressType": "IPv4", "ports": None, "endpoints": None}
    assert tables.endpointslice_row(empty, NOW)[2:4] == ["<unset>", "<unset>"]
    np = {
        "metadata": {"name": "deny", "creationTimestamp": CREATED},
        "spec": {
            "podSelector": {
                "matchLabels": {"b": "1"},
                "matchExpressions": [{"key": "a", "operator": "In", "values": ["y", "x"]}],
            }
        },
    }
    assert tables.networkpolicy_row(np, NOW) == ["deny", "a in (x,y),b=1", "2m"]
    np["spec"]["podSelector"] = {}
    assert tables.networkpolicy_row(np, NOW)[1] == "<none>"
    ev = {
        "metadata": {"name": "p.1"},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "type": "Normal",
        "reason": "Started",
        "message": " hi ",
        "firstTimestamp": CREATED,
        "lastTimestamp": "2027-01-15T07:59:50Z",
        "count": 3,
        "source": {"component": "kubelet", "host": "n1"},
    }
    assert tables.event_row(ev, NOW) == [
        "10s", "Normal", "Started", "pod/p", "", "kubelet, n1", "hi", "2m", 3, "p.1",
    ]  # fmt: skip


def test_table_include_object_variants() -> None:
    obj = {"metadata": {"name": "x", "labels": {"a": "b"}, "managedFields": [{}]}, "status": {}}
    meta = tables.table("Namespace", [obj], NOW)
    assert meta["kind"] == "Table" and meta["apiVersion"] == "meta.k8s.io/v1"
    assert meta["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"name": "x", "labels": {"a": "b"}},
    }
    full = tables.table("Namespace", [obj], NOW, include=tables.INCLUDE_OBJECT)
    assert full["rows"][0]["object"] is obj
    none = tables.table("Namespace", [obj], NOW, include=tables.INCLUDE_NONE, headers=False)
    assert "object" not in none["rows"][0] and "columnDefinitions" not in none
