"""Defaulting of the served kinds, as the real API server defaults them on create and update.

Besides the SetDefaults_* functions of pkg/apis/*/v1 this applies what a user sees after a create
on a stock cluster from three other places, each only where the field is still unset so that
running it again (on every update) changes nothing:

* the registries' PrepareForCreate: pod status (phase Pending, QoS class, the SchedulingGated
  condition), namespace status and the `kubernetes` finalizer, service cluster-IP/family fields;
* the default admission plugins: ServiceAccount (`default`), Priority (0, PreemptLowerPriority
  or the built-in system classes) and DefaultTolerationSeconds (300s not-ready/unreachable);
* v1 conversion, which keeps podIP/podIPs, hostIP/hostIPs, podCIDR/podCIDRs and
  serviceAccount/serviceAccountName in step, and canonical Quantity strings ("0.5" -> "500m").

Cluster-IP and node-port allocation are the server's; the cluster is taken to be single-stack IPv4.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

from . import _convert
from . import _quantity as quantity
from .validation_pod import VOLUME_SOURCES

# Values from k8s.io/api/core/v1 and the admission plugins.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_GRACE_PERIOD = 30
DEFAULT_CLIENT_IP_TIMEOUT = 10800
DEFAULT_FILE_MODE = 0o644  # 420, secret/configMap/downwardAPI/projected volumes
DEFAULT_TOKEN_EXPIRATION = 3600
DEFAULT_TOLERATION_SECONDS = 300
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
SYSTEM_PRIORITY_CLASSES = {
    "system-node-critical": 2000001000,
    "system-cluster-critical": 2000000000,
}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
CLUSTER_IP_FAMILY = "IPv4"
QOS_RESOURCES = ("cpu", "memory")
SCHEDULING_GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"
CONTAINER_SECTIONS = ("containers", "initContainers", "ephemeralContainers")


def apply_defaults(kind: str, obj: dict[str, Any]) -> None:
    """Fill in defaulted fields of `obj` in place (spec and status; not metadata bookkeeping)."""
    fn = _DEFAULTERS.get(kind)
    if fn is None:
        raise ValueError(f"defaults: unsupported kind {kind!r}")
    fn(obj)


# --- small helpers ----------------------------------------------------------------------------


def _sub(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """parent[key] as a dict, created when missing (a non-dict value is left alone)."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (x for x in value if isinstance(x, dict))


def _setdefault(d: dict[str, Any], key: str, value: Any) -> None:
    if d.get(key) in (None, ""):
        d[key] = value


def _canonical_resource_list(value: Any) -> None:
    """SetDefaults_ResourceList (round up to milli) plus the canonical string of each value."""
    if not isinstance(value, dict):
        return
    for name, raw in value.items():
        if isinstance(raw, str | int | float) and not isinstance(raw, bool):
            q = quantity.parse(raw)
            if q is not None:
                value[name] = quantity.canonical(quantity.round_up_milli(q))


# --- Pod --------------------------------------------------------------------------------------


def _default_pod(pod: dict[str, Any]) -> None:
    spec = _sub(pod, "spec")
    _default_pod_spec(spec)
    for section in CONTAINER_SECTIONS:
        for ctr in _items(spec.get(section)):
            _default_container(ctr)
    for ctr in [*_items(spec.get("containers")), *_items(spec.get("initContainers"))]:
        _default_requests_from_limits(ctr)
    for volume in _items(spec.get("volumes")):
        _default_volume(volume)
    if spec.get("hostNetwork") is True:
        # With host networking every container port is a host port.
        for ctr in [*_items(spec.get("containers")), *_items(spec.get("initContainers"))]:
            for port in _items(ctr.get("ports")):
                if not port.get("hostPort"):
                    port["hostPort"] = port.get("containerPort")
    _default_admission(spec)
    _default_pod_status(pod, spec)


def _default_pod_spec(spec: dict[str, Any]) -> None:
    _setdefault(spec, "dnsPolicy", "ClusterFirst")
    _setdefault(spec, "restartPolicy", "Always")
    _setdefault(spec, "schedulerName", DEFAULT_SCHEDULER)
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_GRACE_PERIOD
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    _canonical_resource_list(spec.get("overhead"))


def _default_container(ctr: dict[str, Any]) -> None:
    if not ctr.get("imagePullPolicy"):
        ctr["imagePullPolicy"] = (
            "Always" if _image_tag(ctr.get("image")) == "latest" else ("IfNotPresent")
        )
    _setdefault(ctr, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    _setdefault(ctr, "terminationMessagePolicy", "File")
    for port in _items(ctr.get("ports")):
        _setdefault(port, "protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = ctr.get(probe_name)
        if isinstance(probe, dict):
            _default_probe(probe)
    lifecycle = ctr.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            handler = lifecycle.get(hook)
            if isinstance(handler, dict):
                _default_handler(handler)
    for var in _items(ctr.get("env")):
        source = var.get("valueFrom")
        if isinstance(source, dict) and isinstance(source.get("fieldRef"), dict):
            _setdefault(source["fieldRef"], "apiVersion", "v1")
    resources = ctr.get("resources")
    if isinstance(resources, dict):
        _canonical_resource_list(resources.get("limits"))
        _canonical_resource_list(resources.get("requests"))
    elif resources is None:
        ctr["resources"] = {}


_DIGEST_RE = re.compile(r"@[A-Za-z0-9_+.-]+:[0-9a-fA-F]{32,}$")


def _image_tag(image: Any) -> str:
    """The tag parsers.ParseImageName finds: "latest" when an image has neither tag nor digest."""
    if not isinstance(image, str):
        return "latest"
    text: str = image
    digest = _DIGEST_RE.search(text)
    if digest:
        text = text[: digest.start()]
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if digest else "latest"


def _default_probe(probe: dict[str, Any]) -> None:
    for field_name, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if not probe.get(field_name):
            probe[field_name] = value
    _default_handler(probe)


def _default_handler(handler: dict[str, Any]) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        _setdefault(http_get, "path", "/")
        _setdefault(http_get, "scheme", "HTTP")
    grpc = handler.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""  # +default="" on GRPCAction.Service


def _default_requests_from_limits(ctr: dict[str, Any]) -> None:
    """SetDefaults_Pod: requests default to limits, resource by resource."""
    resources = ctr.get("resources")
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    requests = _sub(resources, "requests")
    for name, limit in resources["limits"].items():
        requests.setdefault(name, limit)


def _default_volume(volume: dict[str, Any]) -> None:
    if all(volume.get(k) is None for k in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        value = volume.get(source)
        if isinstance(value, dict) and value.get("defaultMode") is None:
            value["defaultMode"] = DEFAULT_FILE_MODE
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    empty_dir = volume.get("emptyDir")
    if isinstance(empty_dir, dict) and empty_dir.get("sizeLimit") is not None:
        empty_dir["sizeLimit"] = quantity.canonical_text(empty_dir["sizeLimit"])
    downward = volume.get("downwardAPI")
    if isinstance(downward, dict):
        _default_downward_items(downward.get("items"))
    projected = volume.get("projected")
    if isinstance(projected, dict):
        for projection in _items(projected.get("sources")):
            token = projection.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = DEFAULT_TOKEN_EXPIRATION
            if isinstance(projection.get("downwardAPI"), dict):
                _default_downward_items(projection["downwardAPI"].get("items"))


def _default_downward_items(items: Any) -> None:
    for item in _items(items):
        if isinstance(item.get("fieldRef"), dict):
            _setdefault(item["fieldRef"], "apiVersion", "v1")


def _default_admission(spec: dict[str, Any]) -> None:
    """What the ServiceAccount, Priority and DefaultTolerationSeconds admission plugins add."""
    # v1 conversion: serviceAccount is the deprecated alias; serviceAccountName wins.
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    spec["serviceAccount"] = spec["serviceAccountName"]
    class_name = spec.get("priorityClassName")
    if not class_name:
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif class_name in SYSTEM_PRIORITY_CLASSES:
        spec.setdefault("priority", SYSTEM_PRIORITY_CLASSES[class_name])
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    if not isinstance(tolerations, list):
        return
    for taint in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not any(_tolerates_no_execute(t, taint) for t in _items(tolerations)):
            tolerations.append(
                {
                    "key": taint,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    spec["tolerations"] = tolerations


def _tolerates_no_execute(tol: dict[str, Any], taint: str) -> bool:
    return tol.get("key") in (taint, "", None) and tol.get("effect") in ("NoExecute", "", None)


def _default_pod_status(pod: dict[str, Any], spec: dict[str, Any]) -> None:
    status = _sub(pod, "status")
    _setdefault(status, "phase", "Pending")
    _setdefault(status, "qosClass", qos_class(spec))
    if spec.get("schedulingGates") and not status.get("conditions"):
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "SchedulingGated",
                "message": SCHEDULING_GATED_MESSAGE,
            }
        ]
    _sync_ip_fields(status, "podIP", "podIPs", _convert.pod_ips(status))
    _sync_ip_fields(status, "hostIP", "hostIPs", _convert.host_ips(status))


def _sync_ip_fields(status: dict[str, Any], single: str, plural: str, ips: list[Any]) -> None:
    if ips:
        status[plural] = ips
        first = ips[0].get("ip") if isinstance(ips[0], dict) else None
        if isinstance(first, str):
            status[single] = first


def qos_class(spec: dict[str, Any]) -> str:
    """ComputePodQOS: Guaranteed, Burstable or BestEffort from cpu/memory requests and limits."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    pod_level = spec.get("resources")
    holders: list[dict[str, Any]]
    if isinstance(pod_level, dict):
        # With pod-level resources (PodLevelResources, on by default) only they count.
        holders = [pod_level]
    else:
        holders = [
            c["resources"] if isinstance(c.get("resources"), dict) else {}
            for section in ("containers", "initContainers")
            for c in _items(spec.get(section))
        ]
    for res in holders:
        _add_positive(requests, res.get("requests"))
        found = _add_positive(limits, res.get("limits"))
        if pod_level is res and not res.get("limits"):
            continue  # pod-level requests alone say nothing about limits
        if not found.issuperset(QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    matching = all(limits.get(k) == v for k, v in requests.items())
    if guaranteed and matching and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _add_positive(totals: dict[str, Fraction], values: Any) -> set[str]:
    found: set[str] = set()
    if not isinstance(values, dict):
        return found
    for name in QOS_RESOURCES:
        raw = values.get(name)
        q = quantity.parse(raw) if raw is not None else None
        if q is not None and q.value > 0:
            found.add(name)
            totals[name] = totals.get(name, Fraction(0)) + q.value
    return found


# --- Service ----------------------------------------------------------------------------------


def _default_service(svc: dict[str, Any]) -> None:
    spec = _sub(svc, "spec")
    _setdefault(spec, "sessionAffinity", "None")
    if spec.get("sessionAffinity") == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec.get("sessionAffinity") == "ClientIP":
        client_ip = _sub(_sub(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip.get("timeoutSeconds") is None:
            client_ip["timeoutSeconds"] = DEFAULT_CLIENT_IP_TIMEOUT
    _setdefault(spec, "type", "ClusterIP")
    for port in _items(spec.get("ports")):
        _setdefault(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    kind = spec.get("type")
    externally_accessible = kind in ("NodePort", "LoadBalancer") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )
    if externally_accessible:
        _setdefault(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("internalTrafficPolicy") is None and kind in (
        "ClusterIP",
        "NodePort",
        "LoadBalancer",
    ):
        spec["internalTrafficPolicy"] = "Cluster"
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    _default_cluster_ip_fields(spec)
    status = _sub(svc, "status")
    lb = _sub(status, "loadBalancer")
    if kind == "LoadBalancer":
        for ingress in _items(lb.get("ingress")):
            if ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"


def _default_cluster_ip_fields(spec: dict[str, Any]) -> None:
    """NormalizeClusterIPs and initIPFamilyFields for a create on a single-stack IPv4 cluster."""
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and cluster_ip and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [cluster_ip]
    if spec.get("type") == "ExternalName":
        return  # no cluster IPs, so no families either
    headless_selectorless = cluster_ip == "None" and not spec.get("selector")
    if spec.get("ipFamilyPolicy") is None:
        spec["ipFamilyPolicy"] = "RequireDualStack" if headless_selectorless else "SingleStack"
    families = spec.get("ipFamilies")
    if families is None:
        families = []
    if not isinstance(families, list):
        return
    raw_ips = spec.get("clusterIPs")
    ips: list[Any] = raw_ips if isinstance(raw_ips, list) else []
    for i, ip in enumerate(ips):
        if ip == "None" or not isinstance(ip, str):
            break
        family = "IPv6" if ":" in ip else "IPv4"
        # Only infer from IPs that fit; a bad pair is left for validation to report.
        if i >= len(families) and family not in families:
            families.append(family)
    if not families:
        families.append(CLUSTER_IP_FAMILY)
    if headless_selectorless and len(families) < 2 and spec["ipFamilyPolicy"] != "SingleStack":
        # Headless services without selectors get both families even on single-stack clusters.
        families.append("IPv6" if families[0] == "IPv4" else "IPv4")
    spec["ipFamilies"] = families


# --- NetworkPolicy, EndpointSlice ---------------------------------------------------------------


def _default_network_policy(np: dict[str, Any]) -> None:
    spec = _sub(np, "spec")
    if spec.get("podSelector") is None:
        spec["podSelector"] = {}  # a struct, not a pointer: always present once decoded
    for section in ("ingress", "egress"):
        for rule in _items(spec.get(section)):
            for port in _items(rule.get("ports")):
                _setdefault(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        # No policyTypes means Ingress, plus Egress when there are egress rules.
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def _default_endpoint_slice(eps: dict[str, Any]) -> None:
    for port in _items(eps.get("ports")):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


# --- Namespace, Node, Event ---------------------------------------------------------------------


def _default_namespace(ns: dict[str, Any]) -> None:
    metadata = _sub(ns, "metadata")
    name = metadata.get("name")
    if isinstance(name, str) and name:
        _sub(metadata, "labels")[NAMESPACE_NAME_LABEL] = name
    spec = _sub(ns, "spec")
    if not metadata.get("deletionTimestamp"):
        # Only the finalize subresource may drop it, and only once deletion has begun.
        finalizers = spec.get("finalizers")
        if not isinstance(finalizers, list):
            finalizers = spec["finalizers"] = []
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
    _setdefault(_sub(ns, "status"), "phase", "Active")


def _default_node(node: dict[str, Any]) -> None:
    spec = _sub(node, "spec")
    cidrs = _convert.pod_cidrs(spec)
    if cidrs:
        spec["podCIDRs"] = cidrs
        spec["podCIDR"] = cidrs[0]
    status = node.get("status")
    if not isinstance(status, dict):
        return
    _canonical_resource_list(status.get("capacity"))
    _canonical_resource_list(status.get("allocatable"))
    if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def _default_event(event: dict[str, Any]) -> None:
    # core/v1 Event has no defaulting functions.
    del event


_DEFAULTERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Pod": _default_pod,
    "Service": _default_service,
    "NetworkPolicy": _default_network_policy,
    "EndpointSlice": _default_endpoint_slice,
    "Namespace": _default_namespace,
    "Node": _default_node,
    "Event": _default_event,
}
