"""The Node object this kubelet registers and keeps up to date: pure builders.

- `new_node`: what a first registration creates, with the taint
  `node.weir.io/agent-not-ready:NoSchedule` that Weir's node-loader removes once its datapath
  is ready (so no pod lands on a node whose datapath cannot protect it yet).
- `registration_update`: what a restarted kubelet changes on an existing Node: its own labels
  and an unset podCIDR. Never its taints: a taint someone removed stays removed.
- `node_status`: addresses, nodeInfo, capacity and the conditions with their heartbeat; Ready
  follows whether the CNI network is configured, with the real kubelet's reason and message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

AGENT_NOT_READY_TAINT = "node.weir.io/agent-not-ready"
LOCAL_LABEL = "node.weir.io/local"
KUBELET_VERSION = "v1.35.0-weir-local"
RUNTIME_VERSION = "weir-local://0.1.0"
MAX_PODS = 300
NETWORK_NOT_READY = (
    "container runtime network not ready: NetworkReady=false "
    "reason:NetworkPluginNotReady message:Network plugin returns error: "
    "cni plugin not initialized"
)
READY_MESSAGE = "kubelet is posting ready status"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostInfo:
    """Facts about the machine, read once by the shell."""

    kernel_version: str
    os_image: str
    machine_id: str
    boot_id: str
    architecture: str
    cpus: int
    memory_kib: int
    ephemeral_storage_kib: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeIdentity:
    name: str
    internal_ip: str
    pod_cidr: str


def labels(ident: NodeIdentity, arch: str) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": ident.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
        LOCAL_LABEL: "true",
    }


def new_node(ident: NodeIdentity, host: HostInfo) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": ident.name, "labels": labels(ident, host.architecture)},
        "spec": {
            "podCIDR": ident.pod_cidr,
            "podCIDRs": [ident.pod_cidr],
            "taints": [{"key": AGENT_NOT_READY_TAINT, "effect": "NoSchedule"}],
        },
    }


def registration_update(existing: Mapping[str, Any], ident: NodeIdentity, host: HostInfo) -> Obj:
    """The existing Node with our labels and (if unset) podCIDR; the same dict contents when
    nothing needs to change. A podCIDR set to something else is left as it is (immutable)."""
    meta = dict(existing.get("metadata") or {})
    spec = dict(existing.get("spec") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels(ident, host.architecture)}
    if not spec.get("podCIDR"):
        spec["podCIDR"] = ident.pod_cidr
        spec["podCIDRs"] = [ident.pod_cidr]
    return {**existing, "metadata": meta, "spec": spec}


def _quantities(host: HostInfo) -> dict[str, str]:
    return {
        "cpu": str(host.cpus),
        "memory": f"{host.memory_kib}Ki",
        "ephemeral-storage": f"{host.ephemeral_storage_kib}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": str(MAX_PODS),
    }


def conditions(network_ready: bool, now: str, previous: Mapping[str, Obj]) -> list[Obj]:
    """The four kubelet conditions with heartbeat `now`; a transition time is kept while the
    condition's status does not change."""

    def cond(ctype: str, status: str, reason: str, message: str) -> Obj:
        old = previous.get(ctype) or {}
        same = old.get("status") == status and old.get("lastTransitionTime")
        return {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": old["lastTransitionTime"] if same else now,
        }

    ready = (
        cond("Ready", "True", "KubeletReady", READY_MESSAGE)
        if network_ready
        else cond("Ready", "False", "KubeletNotReady", NETWORK_NOT_READY)
    )
    return [
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        ready,
    ]


def node_status(
    ident: NodeIdentity,
    host: HostInfo,
    *,
    network_ready: bool,
    now: str,
    previous: Mapping[str, Obj],
    health_port: int = 0,
) -> Obj:
    quantities = _quantities(host)
    status: Obj = {
        "addresses": [
            {"type": "InternalIP", "address": ident.internal_ip},
            {"type": "Hostname", "address": ident.name},
        ],
        "capacity": quantities,
        "allocatable": dict(quantities),
        "conditions": conditions(network_ready, now, previous),
        "nodeInfo": {
            "machineID": host.machine_id,
            "systemUUID": host.machine_id,
            "bootID": host.boot_id,
            "kernelVersion": host.kernel_version,
            "osImage": host.os_image,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": host.architecture,
        },
    }
    if health_port:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": health_port}}
    return status


def previous_conditions(node: Mapping[str, Any] | None) -> dict[str, Obj]:
    if not node:
        return {}
    return {
        str(c.get("type")): c
        for c in (node.get("status") or {}).get("conditions") or []
        if isinstance(c, dict)
    }
