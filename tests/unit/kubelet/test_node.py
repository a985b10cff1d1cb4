"""The Node the kubelet registers: labels, taint, podCIDR, status and conditions."""

from __future__ import annotations

from weir_local.kubelet.node import (
    AGENT_NOT_READY_TAINT,
    NETWORK_NOT_READY,
    HostInfo,
    NodeIdentity,
    new_node,
    node_status,
    previous_conditions,
    registration_update,
)

IDENT = NodeIdentity(name="n1", internal_ip="172.18.0.2", pod_cidr="10.244.1.0/24")
HOST = HostInfo(
    kernel_version="6.18.0",
    os_image="Debian GNU/Linux 12 (bookworm)",
    machine_id="abc",
    boot_id="boot",
    architecture="amd64",
    cpus=2,
    memory_kib=1024,
    ephemeral_storage_kib=2048,
)


def test_first_registration() -> None:
    node = new_node(IDENT, HOST)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "n1"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["node.weir.io/local"] == "true"
    assert node["spec"]["podCIDR"] == "10.244.1.0/24"
    assert node["spec"]["podCIDRs"] == ["10.244.1.0/24"]
    assert node["spec"]["taints"] == [{"key": AGENT_NOT_READY_TAINT, "effect": "NoSchedule"}]


def test_restart_keeps_taints_as_they_are_and_podcidr_immutable() -> None:
    existing = {
        "metadata": {"name": "n1", "labels": {"team": "x"}, "resourceVersion": "7"},
        "spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"], "taints": []},
    }
    updated = registration_update(existing, IDENT, HOST)
    assert updated["spec"]["taints"] == []  # node-loader removed it: it stays removed
    assert updated["spec"]["podCIDR"] == "10.244.9.0/24"
    assert updated["metadata"]["labels"]["team"] == "x"
    assert updated["metadata"]["labels"]["node.weir.io/local"] == "true"
    assert updated["metadata"]["resourceVersion"] == "7"  # an update, not a blind write
    assert registration_update(updated, IDENT, HOST) == updated  # nothing more to change
    bare = registration_update({"metadata": {"name": "n1"}, "spec": {}}, IDENT, HOST)
    assert bare["spec"]["podCIDRs"] == ["10.244.1.0/24"]


def test_status_and_ready_follows_the_network() -> None:
    st = node_status(IDENT, HOST, network_ready=False, now="T1", previous={}, health_port=9)
    assert st["addresses"] == [
        {"type": "InternalIP", "address": "172.18.0.2"},
        {"type": "Hostname", "address": "n1"},
    ]
    info = st["nodeInfo"]
    assert info["containerRuntimeVersion"] == "weir-local://0.1.0"
    assert info["kernelVersion"] == "6.18.0" and info["kubeletVersion"].startswith("v1.35")
    assert st["capacity"]["pods"] == "300" and st["allocatable"]["cpu"] == "2"
    assert st["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 9}}
    ready = {c["type"]: c for c in st["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "KubeletNotReady"
    assert ready["message"] == NETWORK_NOT_READY
    assert ready["lastHeartbeatTime"] == "T1" and ready["lastTransitionTime"] == "T1"
    # A heartbeat with no change keeps the transition time; readiness flips it.
    prev = previous_conditions({"status": st})
    again = node_status(IDENT, HOST, network_ready=False, now="T2", previous=prev)
    r2 = {c["type"]: c for c in again["conditions"]}["Ready"]
    assert r2["lastHeartbeatTime"] == "T2" and r2["lastTransitionTime"] == "T1"
    flipped = node_status(IDENT, HOST, network_ready=True, now="T3", previous=prev)
    r3 = {c["type"]: c for c in flipped["conditions"]}
    assert r3["Ready"]["status"] == "True" and r3["Ready"]["reason"] == "KubeletReady"
    assert r3["Ready"]["lastTransitionTime"] == "T3"
    assert r3["MemoryPressure"]["lastTransitionTime"] == "T1"
