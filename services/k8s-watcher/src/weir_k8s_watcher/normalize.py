"""Kubernetes API objects (decoded JSON) into weir.models — the only place that reads raw fields.

The API server has validated what it stores, but the watcher still treats every object as
input: a missing or mistyped field raises `NormalizeError` naming the field, and the caller
reports it and keeps serving the other objects. Defaults the API server would fill are filled
here too, so an object from an older server normalizes the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from weir.labels import selector_from_k8s
from weir.models import (
    DATAPLANE_ANNOTATION_PREFIX,
    DATAPLANE_ANNOTATIONS,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    IPBlock,
    K8sObject,
    Meta,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    Protocol,
    Service,
    ServicePort,
    ServiceType,
    SessionAffinity,
    Taint,
    TrafficPolicy,
)

Raw = Mapping[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds, the Kubernetes default for ClientIP affinity


class NormalizeError(ValueError):
    """An API object Weir cannot use; the message names the field."""


def _get(obj: Raw, path: str, default: Any = None) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return default
        cur = cur.get(part)
        if cur is None:
            return default
    return cur


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise NormalizeError(f"{what} must map strings to strings")
    return dict(sorted(value.items()))


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise NormalizeError(f"{what} must be a list")
    return value


def _int(value: Any, what: str, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise NormalizeError(f"{what} must be an integer, not {value!r}")
    return value


def _ip(value: Any, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (TypeError, ValueError):
        raise NormalizeError(f"{what} is not an IP address: {value!r}") from None


def _cidr(value: Any, what: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except (TypeError, ValueError):
        raise NormalizeError(f"{what} is not a CIDR: {value!r}") from None


def _protocol(value: Any, what: str) -> Protocol:
    try:
        return Protocol(value or "TCP")
    except ValueError:
        raise NormalizeError(f"{what}: unknown protocol {value!r}") from None


def meta(obj: Raw, *, namespaced: bool) -> Meta:
    m = obj.get("metadata")
    if not isinstance(m, Mapping) or not m.get("name"):
        raise NormalizeError("metadata.name is missing")
    namespace = m.get("namespace") or ""
    if namespaced and not namespace:
        raise NormalizeError("metadata.namespace is missing")
    annotations = _str_map(m.get("annotations"), "metadata.annotations")
    return Meta(
        name=str(m["name"]),
        namespace=str(namespace) if namespaced else "",
        uid=str(m.get("uid") or ""),
        resource_version=str(m.get("resourceVersion") or ""),
        labels=_str_map(m.get("labels"), "metadata.labels"),
        annotations={
            k: v
            for k, v in annotations.items()
            if k in DATAPLANE_ANNOTATIONS or k.startswith(DATAPLANE_ANNOTATION_PREFIX)
        },
    )


def _condition(obj: Raw, path: str, cond_type: str) -> bool:
    for c in _list(_get(obj, path), path):
        if isinstance(c, Mapping) and c.get("type") == cond_type:
            return c.get("status") == "True"
    return False


def namespace(obj: Raw) -> Namespace:
    terminating = bool(_get(obj, "metadata.deletionTimestamp")) or (
        _get(obj, "status.phase") == "Terminating"
    )
    return Namespace(meta=meta(obj, namespaced=False), terminating=terminating)


def pod(obj: Raw) -> Pod:
    ips = [
        p.get("ip")
        for p in _list(_get(obj, "status.podIPs"), "status.podIPs")
        if isinstance(p, Mapping)
    ]
    if not ips and _get(obj, "status.podIP"):
        ips = [_get(obj, "status.podIP")]
    ports: list[ContainerPort] = []
    for ci, c in enumerate(_list(_get(obj, "spec.containers"), "spec.containers")):
        for pi, p in enumerate(_list(c.get("ports"), f"spec.containers[{ci}].ports")):
            where = f"spec.containers[{ci}].ports[{pi}]"
            ports.append(
                ContainerPort(
                    name=str(p.get("name") or ""),
                    port=_int(p.get("containerPort"), f"{where}.containerPort"),
                    protocol=_protocol(p.get("protocol"), f"{where}.protocol"),
                )
            )
    host_ip = _get(obj, "status.hostIP")
    return Pod(
        meta=meta(obj, namespaced=True),
        node_name=str(_get(obj, "spec.nodeName", "")),
        host_network=bool(_get(obj, "spec.hostNetwork", False)),
        phase=str(_get(obj, "status.phase", "Pending")),
        pod_ips=tuple(_ip(ip, "status.podIPs") for ip in ips),
        host_ip=_ip(host_ip, "status.hostIP") if host_ip else "",
        ready=_condition(obj, "status.conditions", "Ready"),
        terminating=bool(_get(obj, "metadata.deletionTimestamp")),
        ports=tuple(ports),
    )


def node(obj: Raw) -> Node:
    addresses = [
        a
        for a in _list(_get(obj, "status.addresses"), "status.addresses")
        if isinstance(a, Mapping)
    ]
    cidrs = _list(_get(obj, "spec.podCIDRs"), "spec.podCIDRs")
    if not cidrs and _get(obj, "spec.podCIDR"):
        cidrs = [_get(obj, "spec.podCIDR")]
    return Node(
        meta=meta(obj, namespaced=False),
        internal_ips=tuple(
            _ip(a.get("address"), "status.addresses")
            for a in addresses
            if a.get("type") == "InternalIP"
        ),
        external_ips=tuple(
            _ip(a.get("address"), "status.addresses")
            for a in addresses
            if a.get("type") == "ExternalIP"
        ),
        pod_cidrs=tuple(_cidr(c, "spec.podCIDRs") for c in cidrs),
        taints=tuple(
            Taint(
                key=str(t.get("key", "")),
                value=str(t.get("value") or ""),
                effect=str(t.get("effect", "")),
            )
            for t in _list(_get(obj, "spec.taints"), "spec.taints")
        ),
        ready=_condition(obj, "status.conditions", "Ready"),
        unschedulable=bool(_get(obj, "spec.unschedulable", False)),
    )


def _enum(enum: Any, value: Any, default: Any, what: str) -> Any:
    try:
        return enum(value) if value is not None else default
    except ValueError:
        raise NormalizeError(f"{what}: unsupported value {value!r}") from None


def service(obj: Raw) -> Service:
    svc_type = _enum(ServiceType, _get(obj, "spec.type"), ServiceType.CLUSTER_IP, "spec.type")
    raw_ips = _list(_get(obj, "spec.clusterIPs"), "spec.clusterIPs") or (
        [_get(obj, "spec.clusterIP")] if _get(obj, "spec.clusterIP") else []
    )
    headless = raw_ips[:1] == ["None"]
    ports = []
    for i, p in enumerate(_list(_get(obj, "spec.ports"), "spec.ports")):
        where = f"spec.ports[{i}]"
        port = _int(p.get("port"), f"{where}.port")
        target = p.get("targetPort", port)
        if not isinstance(target, int | str) or isinstance(target, bool):
            raise NormalizeError(f"{where}.targetPort must be a number or a name")
        ports.append(
            ServicePort(
                name=str(p.get("name") or ""),
                protocol=_protocol(p.get("protocol"), f"{where}.protocol"),
                port=port,
                target_port=target or port,
                node_port=_int(p.get("nodePort"), f"{where}.nodePort"),
            )
        )
    selector = _get(obj, "spec.selector")
    ingress = _list(_get(obj, "status.loadBalancer.ingress"), "status.loadBalancer.ingress")
    return Service(
        meta=meta(obj, namespaced=True),
        type=svc_type,
        cluster_ips=() if headless else tuple(_ip(ip, "spec.clusterIPs") for ip in raw_ips),
        headless=headless,
        external_ips=tuple(
            _ip(ip, "spec.externalIPs")
            for ip in _list(_get(obj, "spec.externalIPs"), "spec.externalIPs")
        ),
        load_balancer_ips=tuple(
            _ip(i["ip"], "status.loadBalancer.ingress")
            for i in ingress
            if isinstance(i, Mapping) and i.get("ip")
        ),
        ports=tuple(ports),
        selector=_str_map(selector, "spec.selector") if selector else None,
        session_affinity=_enum(
            SessionAffinity,
            _get(obj, "spec.sessionAffinity"),
            SessionAffinity.NONE,
            "spec.sessionAffinity",
        ),
        affinity_timeout_seconds=_int(
            _get(obj, "spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            DEFAULT_AFFINITY_TIMEOUT,
        ),
        external_traffic_policy=_enum(
            TrafficPolicy,
            _get(obj, "spec.externalTrafficPolicy"),
            TrafficPolicy.CLUSTER,
            "spec.externalTrafficPolicy",
        ),
        internal_traffic_policy=_enum(
            TrafficPolicy,
            _get(obj, "spec.internalTrafficPolicy"),
            TrafficPolicy.CLUSTER,
            "spec.internalTrafficPolicy",
        ),
        health_check_node_port=_int(
            _get(obj, "spec.healthCheckNodePort"), "spec.healthCheckNodePort"
        ),
        publish_not_ready_addresses=bool(_get(obj, "spec.publishNotReadyAddresses", False)),
        load_balancer_source_ranges=tuple(
            _cidr(c, "spec.loadBalancerSourceRanges")
            for c in _list(
                _get(obj, "spec.loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges"
            )
        ),
    )


def endpoint_slice(obj: Raw) -> EndpointSlice:
    address_type = str(obj.get("addressType") or "")
    if not address_type:
        raise NormalizeError("addressType is missing")
    endpoints = []
    for i, e in enumerate(_list(obj.get("endpoints"), "endpoints")):
        where = f"endpoints[{i}]"
        conditions = e.get("conditions") or {}
        # Kubernetes: a nil `ready` means ready; nil serving/terminating follow from it.
        ready = conditions.get("ready")
        ready = True if ready is None else bool(ready)
        serving = conditions.get("serving")
        target = e.get("targetRef") or {}
        is_pod = target.get("kind") == "Pod"
        addresses = _list(e.get("addresses"), f"{where}.addresses")
        endpoints.append(
            Endpoint(
                addresses=tuple(
                    _ip(a, f"{where}.addresses") if address_type != "FQDN" else str(a)
                    for a in addresses
                ),
                ready=ready,
                serving=ready if serving is None else bool(serving),
                terminating=bool(conditions.get("terminating", False)),
                node_name=str(e.get("nodeName") or ""),
                zone=str(e.get("zone") or ""),
                pod_namespace=str(target.get("namespace") or "") if is_pod else "",
                pod_name=str(target.get("name") or "") if is_pod else "",
            )
        )
    ports = []
    for i, p in enumerate(_list(obj.get("ports"), "ports")):
        ports.append(
            EndpointPort(
                name=str(p.get("name") or ""),
                protocol=_protocol(p.get("protocol"), f"ports[{i}].protocol"),
                port=_int(p.get("port"), f"ports[{i}].port"),
            )
        )
    m = meta(obj, namespaced=True)
    return EndpointSlice(
        meta=m,
        service_name=m.labels.get(SERVICE_NAME_LABEL, ""),
        address_type=address_type,
        ports=tuple(ports),
        endpoints=tuple(endpoints),
    )


def _peer(raw: Raw, where: str) -> PolicyPeer:
    block = raw.get("ipBlock")
    return PolicyPeer(
        pod_selector=selector_from_k8s(raw["podSelector"]) if "podSelector" in raw else None,
        namespace_selector=(
            selector_from_k8s(raw["namespaceSelector"]) if "namespaceSelector" in raw else None
        ),
        ip_block=IPBlock(
            cidr=_cidr(block.get("cidr"), f"{where}.ipBlock.cidr"),
            except_=tuple(
                _cidr(c, f"{where}.ipBlock.except")
                for c in _list(block.get("except"), f"{where}.ipBlock.except")
            ),
        )
        if isinstance(block, Mapping)
        else None,
    )


def _rules(raw: Any, direction: str, peers_field: str) -> tuple[PolicyRule, ...]:
    rules = []
    for i, r in enumerate(_list(raw, f"spec.{direction}")):
        where = f"spec.{direction}[{i}]"
        ports = []
        for j, p in enumerate(_list(r.get("ports"), f"{where}.ports")):
            port = p.get("port")
            if port is not None and (isinstance(port, bool) or not isinstance(port, int | str)):
                raise NormalizeError(f"{where}.ports[{j}].port must be a number or a name")
            ports.append(
                PolicyPort(
                    protocol=_protocol(p.get("protocol"), f"{where}.ports[{j}].protocol"),
                    port=port,
                    end_port=p.get("endPort"),
                )
            )
        rules.append(
            PolicyRule(
                peers=tuple(
                    _peer(peer, f"{where}.{peers_field}[{k}]")
                    for k, peer in enumerate(_list(r.get(peers_field), f"{where}.{peers_field}"))
                ),
                ports=tuple(ports),
            )
        )
    return tuple(rules)


def network_policy(obj: Raw) -> NetworkPolicy:
    spec = obj.get("spec") or {}
    types = spec.get("policyTypes")
    if not types:
        # networking/v1 defaulting: Ingress always, Egress when egress rules exist.
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    return NetworkPolicy(
        meta=meta(obj, namespaced=True),
        generation=_int(_get(obj, "metadata.generation"), "metadata.generation"),
        pod_selector=selector_from_k8s(spec.get("podSelector")),
        policy_types=tuple(_enum(PolicyType, t, None, "spec.policyTypes") for t in types),
        ingress=_rules(spec.get("ingress"), "ingress", "from"),
        egress=_rules(spec.get("egress"), "egress", "to"),
    )


NORMALIZERS: dict[str, Callable[[Raw], K8sObject]] = {
    "Namespace": namespace,
    "Node": node,
    "Pod": pod,
    "Service": service,
    "EndpointSlice": endpoint_slice,
    "NetworkPolicy": network_policy,
}


def normalize(kind: str, obj: Raw) -> K8sObject:
    """The model of one API object. Raises NormalizeError for anything Weir cannot use."""
    try:
        return NORMALIZERS[kind](obj)
    except NormalizeError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        # A structurally unexpected object (a list where a map belongs, ...).
        raise NormalizeError(f"unexpected shape: {e}") from None
