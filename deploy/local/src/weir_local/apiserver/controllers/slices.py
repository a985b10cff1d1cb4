"""EndpointSlice computation for one Service: a pure function from (Service, Pods, zones,
existing slices) to the creates, updates and deletes that make the slices right.

Follows kube-controller-manager's endpointslice controller:
- one endpoint per selected pod that has an IP and is not Succeeded/Failed; conditions
  ready (Ready and not terminating; always with publishNotReadyAddresses), serving (Ready),
  terminating (deletionTimestamp set); nodeName, zone, targetRef;
- ports carry each service port's *resolved* target port; a named targetPort resolves per pod
  against its containerPorts (name and protocol), so pods that resolve differently land in
  different slices; a port a pod cannot resolve is left out for that pod, and a pod that
  resolves none of the Service's ports is left out;
- at most `max_endpoints` per slice; endpoints stay in the slice they are in, new ones fill
  slices with room before new slices are made; a Service selecting nothing keeps one empty
  placeholder slice;
- only slices labelled as managed by the controller are ever touched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100

PortKey = tuple[tuple[str, str, int, str], ...]  # (name, protocol, port, appProtocol)


@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def is_managed(slice_obj: Mapping[str, Any], service_name: str | None = None) -> bool:
    labels = (slice_obj.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME:
        return False
    return service_name is None or labels.get(SERVICE_NAME_LABEL) == service_name


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    ips = status.get("podIPs") or []
    if ips and isinstance(ips[0], dict) and ips[0].get("ip"):
        return str(ips[0]["ip"])
    return str(status.get("podIP") or "")


def _pod_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def resolve_port(pod: Obj, service_port: Obj) -> int | None:
    """podutil.FindPort: a number is itself; a name is looked up in the pod's containerPorts."""
    target = service_port.get("targetPort")
    if target is None:
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    proto = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                cp = p.get("containerPort")
                return cp if isinstance(cp, int) else None
    return None


def pod_port_key(service: Obj, pod: Obj) -> PortKey | None:
    """The resolved ports of one pod; None when the pod resolves none of the service's ports."""
    ports = (service.get("spec") or {}).get("ports") or []
    out = []
    for sp in ports:
        num = resolve_port(pod, sp)
        if num is None:
            continue
        out.append(
            (sp.get("name") or "", sp.get("protocol") or "TCP", num, sp.get("appProtocol") or "")
        )
    if ports and not out:
        return None
    return tuple(out)


def endpoint_for(service: Obj, pod: Obj, zones: Mapping[str, str]) -> Obj:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    serving = _pod_ready(pod)
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: Obj = {
        "addresses": [pod_ip(pod)],
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": serving,
            "terminating": terminating,
        },
    }
    svc_name = (service.get("metadata") or {}).get("name")
    if spec.get("hostname") and spec.get("subdomain") == svc_name:
        ep["hostname"] = spec["hostname"]
    node = spec.get("nodeName")
    if node:
        ep["nodeName"] = node
    ep["targetRef"] = {
        "kind": "Pod",
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
    }
    zone = zones.get(node) if node else None
    if zone:
        ep["zone"] = zone
    return ep


def wanted_endpoints(
    service: Obj, pods: Iterable[Obj], zones: Mapping[str, str]
) -> dict[PortKey, dict[str, Obj]]:
    """Endpoints by resolved port set, each keyed by pod name."""
    out: dict[PortKey, dict[str, Obj]] = {}
    for pod in pods:
        if not pod_ip(pod):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        key = pod_port_key(service, pod)
        if key is None:
            continue
        name = (pod.get("metadata") or {}).get("name", "")
        out.setdefault(key, {})[name] = endpoint_for(service, pod, zones)
    return out


def _ports_json(key: PortKey) -> list[Obj]:
    out = []
    for name, proto, port, app in key:
        p: Obj = {"name": name, "protocol": proto, "port": port}
        if app:
            p["appProtocol"] = app
        out.append(p)
    return out


def _slice_port_key(s: Obj) -> PortKey:
    return tuple(
        (
            p.get("name") or "",
            p.get("protocol") or "TCP",
            p.get("port") or 0,
            p.get("appProtocol") or "",
        )
        for p in s.get("ports") or []
    )


def _labels_for(service: Obj) -> dict[str, str]:
    meta = service.get("metadata") or {}
    labels = {
        k: v
        for k, v in (meta.get("labels") or {}).items()
        if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)
    }
    labels[SERVICE_NAME_LABEL] = meta.get("name", "")
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def _owner(service: Obj) -> list[Obj]:
    meta = service.get("metadata") or {}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _endpoint_key(ep: Obj) -> str:
    return str((ep.get("targetRef") or {}).get("name") or (ep.get("addresses") or [""])[0])


def _render(service: Obj, base: Obj | None, key: PortKey, endpoints: list[Obj]) -> Obj:
    """The desired slice object; `base` is the existing slice it replaces (keeps its name)."""
    meta = service.get("metadata") or {}
    if base is not None:
        bmeta = base.get("metadata") or {}
        new_meta: Obj = copy.deepcopy(bmeta)
    else:
        new_meta = {
            "generateName": f"{meta.get('name', '')}-",
            "namespace": meta.get("namespace", ""),
        }
    new_meta["labels"] = _labels_for(service)
    new_meta["ownerReferences"] = _owner(service)
    out: Obj = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": new_meta,
        "addressType": "IPv4",
        "endpoints": sorted(endpoints, key=_endpoint_key),
        "ports": _ports_json(key),
    }
    return out


def _differs(existing: Obj, desired: Obj) -> bool:
    em, dm = existing.get("metadata") or {}, desired.get("metadata") or {}
    if (em.get("labels") or {}) != dm["labels"]:
        return True
    if (em.get("ownerReferences") or []) != dm["ownerReferences"]:
        return True
    if existing.get("addressType") != desired["addressType"]:
        return True
    if (existing.get("endpoints") or []) != desired["endpoints"]:
        return True
    return bool((existing.get("ports") or []) != desired["ports"])


def plan_slices(
    service: Obj,
    pods: Iterable[Obj],
    zones: Mapping[str, str],
    existing: Iterable[Obj],
    *,
    max_endpoints: int = MAX_ENDPOINTS_PER_SLICE,
) -> SlicePlan:
    """What to create, update and delete so the Service's managed slices are as wanted."""
    svc_name = (service.get("metadata") or {}).get("name", "")
    current = sorted(
        (s for s in existing if is_managed(s, svc_name)),
        key=lambda s: (s.get("metadata") or {}).get("name", ""),
    )
    wanted = wanted_endpoints(service, pods, zones)
    plan = SlicePlan()
    by_key: dict[PortKey, list[Obj]] = {}
    for s in current:
        by_key.setdefault(_slice_port_key(s), []).append(s)
    unused: list[Obj] = []
    for key, slices in by_key.items():
        if key not in wanted:
            unused.extend(slices)
    for key in sorted(wanted):
        eps = wanted[key]
        placed: set[str] = set()
        contents: list[tuple[Obj | None, list[Obj]]] = []
        for s in by_key.get(key, []):
            keep: list[Obj] = []
            for ep in s.get("endpoints") or []:
                k = _endpoint_key(ep)
                if k in eps and k not in placed and len(keep) < max_endpoints:
                    keep.append(eps[k])
                    placed.add(k)
            contents.append((s, keep))
        rest = [eps[k] for k in sorted(eps) if k not in placed]
        for _, keep in contents:
            while rest and len(keep) < max_endpoints:
                keep.append(rest.pop(0))
        while rest:
            chunk, rest = rest[:max_endpoints], rest[max_endpoints:]
            contents.append((None, chunk))
        for base, keep in contents:
            if base is not None and not keep:
                unused.append(base)
                continue
            desired = _render(service, base, key, keep)
            if base is None:
                plan.create.append(desired)
            elif _differs(base, desired):
                plan.update.append(desired)
    unused.sort(key=lambda s: (s.get("metadata") or {}).get("name", ""))
    if not wanted:
        # A Service that selects nothing keeps one empty placeholder slice.
        placeholder = _render(service, unused[0] if unused else None, (), [])
        placeholder["endpoints"] = []
        placeholder["ports"] = []
        if unused:
            if _differs(unused[0], placeholder):
                plan.update.append(placeholder)
            unused = unused[1:]
        else:
            plan.create.append(placeholder)
    plan.delete = [(s.get("metadata") or {}).get("name", "") for s in unused]
    return plan
