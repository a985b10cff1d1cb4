"""Service validation, after ValidateService/ValidateServiceUpdate in pkg/apis/core/validation.

Allocation of cluster IPs and node ports (ranges, collisions, families configured on the cluster)
is the server's job and happens after this; here only formats and combinations are checked.
"""

from __future__ import annotations

from typing import Any

from . import _k8s_names as names
from . import _k8s_net as net
from .errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from .validation_meta import (
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    dicts,
    index,
    key,
    messages_as_invalid,
    meta,
    spec,
    status,
    str_map,
    validate_cidr,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_ip,
    validate_labels,
    validate_non_special_ip,
    validate_object_meta,
    validate_object_meta_update,
    validate_qualified_name,
)

PROTOCOLS = ["SCTP", "TCP", "UDP"]  # sets.List order, as NotSupported prints them
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
IP_FAMILIES = ["IPv4", "IPv6"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
LB_IP_MODES = ["Proxy", "VIP"]
TRAFFIC_DISTRIBUTIONS = ["PreferClose"]
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
TOPOLOGY_MODE_ANNOTATION = "service.kubernetes.io/topology-mode"
TOPOLOGY_HINTS_ANNOTATION = "service.kubernetes.io/topology-aware-hints"


def _is_headless(s: dict[str, Any]) -> bool:
    ips = as_list(s.get("clusterIPs"))
    return len(ips) == 1 and ips[0] == "None"


def _externally_accessible(s: dict[str, Any]) -> bool:
    kind = s.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(as_list(s.get("externalIPs")))
    )


def _needs_health_check(s: dict[str, Any]) -> bool:
    return s.get("type") == "LoadBalancer" and s.get("externalTrafficPolicy") == "Local"


def validate_service(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta(obj, True, names.name_is_dns1035_label)
    errs += _validate_topology_annotations(str_map(meta(obj).get("annotations")))
    s = spec(obj)
    path = "spec"
    if not as_list(s.get("ports")) and not _is_headless(s) and s.get("type") != "ExternalName":
        errs.append(required(child(path, "ports")))
    errs += _validate_type_specific(s)
    errs += _validate_ports(s)
    if s.get("selector") is not None:
        errs += validate_labels(s.get("selector"), child(path, "selector"))
    errs += _validate_session_affinity(s)
    errs += validate_cluster_ip_fields(s)
    for i, ip in enumerate(as_list(s.get("externalIPs"))):
        ip_path = index(child(path, "externalIPs"), i)
        ip_errs = validate_ip(as_str(ip), ip_path)
        errs += ip_errs or validate_non_special_ip(as_str(ip), ip_path)
    kind = s.get("type")
    if not kind:
        errs.append(required(child(path, "type")))
    elif kind not in SERVICE_TYPES:
        errs.append(not_supported(child(path, "type"), kind, SERVICE_TYPES))
    errs += _validate_node_ports(s)
    errs += _validate_source_ranges(s, str_map(meta(obj).get("annotations")))
    if s.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        errs.append(
            forbidden(
                child(path, "allocateLoadBalancerNodePorts"),
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    if kind == "LoadBalancer" and s.get("allocateLoadBalancerNodePorts") is None:
        # Upstream builds this path without "spec"; kept so messages match.
        errs.append(required("allocateLoadBalancerNodePorts"))
    errs += _validate_load_balancer_class(s)
    errs += _validate_external_traffic_policy(s)
    errs += _validate_internal_traffic_policy(s)
    distribution = s.get("trafficDistribution")
    if distribution is not None and distribution not in TRAFFIC_DISTRIBUTIONS:
        errs.append(
            not_supported(child(path, "trafficDistribution"), distribution, TRAFFIC_DISTRIBUTIONS)
        )
    return errs


def _validate_topology_annotations(annotations: dict[str, str]) -> list[FieldError]:
    mode = annotations.get(TOPOLOGY_MODE_ANNOTATION)
    hints = annotations.get(TOPOLOGY_HINTS_ANNOTATION)
    if mode is not None and hints is not None and mode != hints:
        return [
            invalid(
                key("metadata.annotations", TOPOLOGY_MODE_ANNOTATION),
                mode,
                f"must match annotations[{TOPOLOGY_HINTS_ANNOTATION}] when both are specified",
            )
        ]
    return []


def _validate_type_specific(s: dict[str, Any]) -> list[FieldError]:
    path = "spec"
    kind = s.get("type")
    errs: list[FieldError] = []
    if kind in ("LoadBalancer", "NodePort") and _is_headless(s):
        errs.append(
            invalid(
                index(child(path, "clusterIPs"), 0),
                "None",
                f"may not be set to 'None' for {kind} services",
            )
        )
    elif kind == "ExternalName":
        for field_name in ("clusterIPs", "ipFamilies"):
            if as_list(s.get(field_name)):
                errs.append(
                    forbidden(child(path, field_name), "may not be set for ExternalName services")
                )
        if s.get("ipFamilyPolicy") is not None:
            errs.append(
                forbidden(child(path, "ipFamilyPolicy"), "may not be set for ExternalName services")
            )
        # A CNAME may end in a dot to mark it fully qualified.
        cname = as_str(s.get("externalName")).removesuffix(".")
        if cname:
            errs += validate_dns1123_subdomain(cname, child(path, "externalName"))
        else:
            errs.append(required(child(path, "externalName")))
    return errs


def _validate_ports(s: dict[str, Any]) -> list[FieldError]:
    ports = dicts(s.get("ports"))
    seen_names: set[str] = set()
    errs: list[FieldError] = []
    for i, port in enumerate(ports):
        errs += _validate_port(port, len(ports) > 1, seen_names, index("spec.ports", i))
    return errs


def _validate_port(
    port: dict[str, Any], require_name: bool, seen: set[str], path: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    name = as_str(port.get("name"))
    if require_name and not name:
        errs.append(required(child(path, "name")))
    elif name:
        errs += validate_dns1123_label(name, child(path, "name"))
        if name in seen:
            errs.append(duplicate(child(path, "name"), name))
        seen.add(name)
    number = as_int(port.get("port")) or 0
    errs += messages_as_invalid(child(path, "port"), number, names.port_num(number))
    protocol = as_str(port.get("protocol"))
    if not protocol:
        errs.append(required(child(path, "protocol")))
    elif protocol not in PROTOCOLS:
        errs.append(not_supported(child(path, "protocol"), protocol, PROTOCOLS))
    errs += validate_port_num_or_name(port.get("targetPort"), child(path, "targetPort"))
    app_protocol = port.get("appProtocol")
    if app_protocol is not None:
        errs += validate_qualified_name(as_str(app_protocol), child(path, "appProtocol"))
    return errs


def validate_port_num_or_name(value: Any, path: str) -> list[FieldError]:
    """An IntOrString port: 1-65535, or an IANA service name (empty counts as int 0)."""
    if value is None or value == "":
        return messages_as_invalid(path, 0, names.port_num(0))
    if isinstance(value, int) and not isinstance(value, bool):
        return messages_as_invalid(path, value, names.port_num(value))
    text = as_str(value)
    return messages_as_invalid(path, text, names.port_name(text))


def _validate_session_affinity(s: dict[str, Any]) -> list[FieldError]:
    path = "spec"
    affinity = s.get("sessionAffinity")
    errs: list[FieldError] = []
    if not affinity:
        errs.append(required(child(path, "sessionAffinity")))
    elif affinity not in SESSION_AFFINITIES:
        errs.append(not_supported(child(path, "sessionAffinity"), affinity, SESSION_AFFINITIES))
    config_path = child(path, "sessionAffinityConfig")
    config = s.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        detail = "when session affinity type is ClientIP"
        client_ip = as_dict(config).get("clientIP")
        timeout = as_dict(client_ip).get("timeoutSeconds")
        if config is None:
            errs.append(required(config_path, detail))
        elif client_ip is None:
            errs.append(required(child(config_path, "clientIP"), detail))
        elif timeout is None:
            errs.append(required(child(config_path, "clientIP", "timeoutSeconds"), detail))
        else:
            seconds = as_int(timeout) or 0
            if seconds <= 0 or seconds > MAX_CLIENT_IP_AFFINITY_SECONDS:
                errs.append(
                    invalid(
                        child(config_path, "clientIP", "timeoutSeconds"),
                        seconds,
                        f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}",
                    )
                )
    elif affinity == "None" and config is not None:
        errs.append(forbidden(config_path, "must not be set when session affinity is None"))
    return errs


def validate_cluster_ip_fields(s: dict[str, Any]) -> list[FieldError]:
    """ValidateServiceClusterIPsRelatedFields: clusterIP/clusterIPs/ipFamilies/ipFamilyPolicy."""
    if s.get("type") == "ExternalName":
        return []
    path = "spec"
    ips_path = child(path, "clusterIPs")
    cluster_ip = as_str(s.get("clusterIP"))
    cluster_ips = [as_str(x) for x in as_list(s.get("clusterIPs"))]
    families = as_list(s.get("ipFamilies"))
    errs: list[FieldError] = []
    if cluster_ip:
        if not cluster_ips:
            errs.append(required(ips_path))
        elif cluster_ips[0] != cluster_ip:
            errs.append(invalid(ips_path, cluster_ips, "first value must match `clusterIP`"))
    elif cluster_ips:
        errs.append(
            invalid(ips_path, cluster_ips, "must be empty when `clusterIP` is not specified")
        )
    seen_families: set[str] = set()
    for i, family in enumerate(families):
        family_path = index(child(path, "ipFamilies"), i)
        if family not in IP_FAMILIES:
            errs.append(not_supported(family_path, family, IP_FAMILIES))
        if family in seen_families:
            errs.append(duplicate(family_path, family))
        seen_families.add(as_str(family))
    policy = s.get("ipFamilyPolicy")
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        errs.append(not_supported(child(path, "ipFamilyPolicy"), policy, IP_FAMILY_POLICIES))
    has_invalid = False
    for i, ip in enumerate(cluster_ips):
        if i == 0 and ip == "None":
            if len(cluster_ips) > 1:
                has_invalid = True
                errs.append(
                    invalid(ips_path, cluster_ips, "'None' must be the first and only value")
                )
            continue
        ip_errs = validate_ip(ip, index(ips_path, i))
        has_invalid = has_invalid or bool(ip_errs)
        errs += ip_errs
    if len(cluster_ips) > 2:
        errs.append(invalid(ips_path, cluster_ips, "may only hold up to 2 values"))
    if has_invalid:
        return errs
    parsed = [ip for ip in (net.parse_ip(x) for x in cluster_ips) if ip is not None]
    if len(cluster_ips) > 1 and not net.is_dual_stack(parsed):
        errs.append(
            invalid(ips_path, cluster_ips, "may specify no more than one IP for each IP family")
        )
    if not _is_headless(s):
        for i, (address, family) in enumerate(zip(parsed, families, strict=False)):
            expected = {"IPv4": True, "IPv6": False}.get(as_str(family))
            if expected is not None and net.is_ipv4(address) != expected:
                errs.append(
                    invalid(
                        index(ips_path, i),
                        cluster_ips[i],
                        f"expected an {family} value as indicated by `ipFamilies[{i}]`",
                    )
                )
    return errs


def _validate_node_ports(s: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    ports = dicts(s.get("ports"))
    if s.get("type") == "ClusterIP":
        for i, port in enumerate(ports):
            if as_int(port.get("nodePort")):
                errs.append(
                    forbidden(
                        child(index("spec.ports", i), "nodePort"),
                        "may not be used when `type` is 'ClusterIP'",
                    )
                )
    seen_node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        node_port = as_int(port.get("nodePort")) or 0
        if not node_port:
            continue
        node_key = (as_str(port.get("protocol")), node_port)
        if node_key in seen_node_ports:
            errs.append(duplicate(child(index("spec.ports", i), "nodePort"), node_port))
        seen_node_ports.add(node_key)
    seen_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        port_key = (as_str(port.get("protocol")), as_int(port.get("port")) or 0)
        if port_key in seen_ports:
            errs.append(
                duplicate(index("spec.ports", i), {"port": port_key[1], "protocol": port_key[0]})
            )
        seen_ports.add(port_key)
    return errs


def _validate_source_ranges(s: dict[str, Any], annotations: dict[str, str]) -> list[FieldError]:
    errs: list[FieldError] = []
    ranges = as_list(s.get("loadBalancerSourceRanges"))
    not_lb = s.get("type") != "LoadBalancer"
    only_lb = "may only be used when `type` is 'LoadBalancer'"
    if ranges:
        # Upstream capitalises this path segment; kept so messages match.
        path = "spec.LoadBalancerSourceRanges"
        if not_lb:
            errs.append(forbidden(path, only_lb))
        for i, value in enumerate(ranges):
            # Values may be space-padded for historical reasons.
            errs += validate_cidr(as_str(value).strip(), index(path, i))
    elif SOURCE_RANGES_ANNOTATION in annotations:
        path = key("metadata.annotations", SOURCE_RANGES_ANNOTATION)
        if not_lb:
            errs.append(forbidden(path, only_lb))
        value = annotations[SOURCE_RANGES_ANNOTATION].strip()
        if value:
            for cidr in value.split(","):
                errs += validate_cidr(cidr.strip(), path)
    return errs


def _validate_load_balancer_class(s: dict[str, Any]) -> list[FieldError]:
    lb_class = s.get("loadBalancerClass")
    if lb_class is None:
        return []
    path = "spec.loadBalancerClass"
    if s.get("type") != "LoadBalancer":
        return [forbidden(path, "may only be used when `type` is 'LoadBalancer'")]
    return validate_qualified_name(as_str(lb_class), path)


def _validate_external_traffic_policy(s: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    policy = s.get("externalTrafficPolicy")
    path = "spec.externalTrafficPolicy"
    if not _externally_accessible(s):
        if policy:
            errs.append(invalid(path, policy, "may only be set for externally-accessible services"))
    elif not policy:
        errs.append(required(path))
    elif policy not in TRAFFIC_POLICIES:
        errs.append(not_supported(path, policy, TRAFFIC_POLICIES))
    health_port = as_int(s.get("healthCheckNodePort")) or 0
    health_path = "spec.healthCheckNodePort"
    if not _needs_health_check(s):
        if health_port:
            errs.append(
                invalid(
                    health_path,
                    health_port,
                    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` "
                    "is 'Local'",
                )
            )
    elif health_port:
        errs += messages_as_invalid(health_path, health_port, names.port_num(health_port))
    # A zero healthCheckNodePort is allocated by the server, so it is not required here.
    return errs


def _validate_internal_traffic_policy(s: dict[str, Any]) -> list[FieldError]:
    policy = s.get("internalTrafficPolicy")
    path = "spec.internalTrafficPolicy"
    if policy is None:
        # Not required for ExternalName, for historical reasons.
        if s.get("type") in ("NodePort", "LoadBalancer", "ClusterIP"):
            return [required(path)]
        return []
    if policy not in TRAFFIC_POLICIES:
        return [not_supported(path, policy, TRAFFIC_POLICIES)]
    return []


def validate_service_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old)
    ns, os_ = spec(new), spec(old)
    errs += _validate_cluster_ips_update(ns, os_)
    errs += _validate_ip_families_update(ns, os_)
    errs += _validate_load_balancer_class_update(ns, os_)
    both_need_health_check = _needs_health_check(os_) and _needs_health_check(ns)
    if both_need_health_check and ns.get("healthCheckNodePort") != os_.get("healthCheckNodePort"):
        errs.append(forbidden("spec.healthCheckNodePort", "field is immutable"))
    return errs + validate_service(new)


def _validate_cluster_ips_update(ns: dict[str, Any], os_: dict[str, Any]) -> list[FieldError]:
    """Primary cluster IPs never change, except to/from/on ExternalName or headless."""
    if "ExternalName" in (ns.get("type"), os_.get("type")):
        return []
    if _is_headless(ns) and _is_headless(os_):
        return []
    new_ips = [as_str(x) for x in as_list(ns.get("clusterIPs"))]
    old_ips = [as_str(x) for x in as_list(os_.get("clusterIPs"))]
    first = "spec.clusterIPs[0]"
    errs: list[FieldError] = []
    if len(old_ips) == len(new_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                errs.append(
                    invalid(index("spec.clusterIPs", i), new_ips, "may not change once set")
                )
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errs.append(invalid(first, new_ips, "primary clusterIP can not be unset"))
        elif new_ips[0] != old_ips[0]:
            errs.append(invalid(first, new_ips, "may not change once set"))
        if len(new_ips) == 1 and ns.get("ipFamilyPolicy") != "SingleStack":
            errs.append(
                invalid(
                    "spec.ipFamilyPolicy",
                    ns.get("ipFamilyPolicy"),
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                )
            )
    elif old_ips and new_ips[0] != old_ips[0]:
        errs.append(invalid(first, new_ips, "may not change once set"))
    return errs


def _validate_ip_families_update(ns: dict[str, Any], os_: dict[str, Any]) -> list[FieldError]:
    if "ExternalName" in (ns.get("type"), os_.get("type")):
        return []
    if _is_headless(ns) or _is_headless(os_):
        # Changes to or from headless, and headless services, may change families.
        return []
    new_f = [as_str(x) for x in as_list(ns.get("ipFamilies"))]
    old_f = [as_str(x) for x in as_list(os_.get("ipFamilies"))]
    first = "spec.ipFamilies[0]"
    new_ips = as_list(ns.get("clusterIPs"))
    errs: list[FieldError] = []
    if len(old_f) == len(new_f):
        # Upstream reports every changed family at index 0.
        errs += [
            invalid(first, new_f, "may not change once set")
            for i, fam in enumerate(old_f)
            if fam != new_f[i]
        ]
    elif len(old_f) > len(new_f):
        if not new_ips:
            errs.append(invalid(first, new_f, "primary ipFamily can not be unset"))
        if new_f and new_f[0] != old_f[0]:
            errs.append(invalid(first, new_ips, "may not change once set"))
        if len(new_f) == 1 and ns.get("ipFamilyPolicy") != "SingleStack":
            errs.append(
                invalid(
                    "spec.ipFamilyPolicy",
                    ns.get("ipFamilyPolicy"),
                    "must be set to 'SingleStack' when releasing the secondary ipFamily",
                )
            )
    elif old_f and new_f and new_f[0] != old_f[0]:
        errs.append(invalid(first, new_ips, "may not change once set"))
    return errs


def _validate_load_balancer_class_update(
    ns: dict[str, Any], os_: dict[str, Any]
) -> list[FieldError]:
    # loadBalancerClass is immutable while the service stays a LoadBalancer.
    both_lb = os_.get("type") == "LoadBalancer" and ns.get("type") == "LoadBalancer"
    if both_lb and ns.get("loadBalancerClass") != os_.get("loadBalancerClass"):
        return [
            invalid(
                "spec.loadBalancerClass",
                ns.get("loadBalancerClass"),
                "may not change once set",
            )
        ]
    return []


def validate_service_status_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old)
    lb = as_dict(status(new).get("loadBalancer"))
    ingress = dicts(lb.get("ingress"))
    path = "status.loadBalancer.ingress"
    if spec(new).get("type") != "LoadBalancer" and ingress:
        return [*errs, forbidden(path, "may only be used when `spec.type` is 'LoadBalancer'")]
    for i, entry in enumerate(ingress):
        errs += _validate_lb_ingress(entry, index(path, i))
    return errs


def _validate_lb_ingress(entry: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    ip = as_str(entry.get("ip"))
    if ip:
        errs += validate_ip(ip, child(path, "ip"))
    mode = entry.get("ipMode")
    if mode is None:
        if ip:
            errs.append(required(child(path, "ipMode"), "must be specified when `ip` is set"))
    elif not ip:
        errs.append(forbidden(child(path, "ipMode"), "may not be specified when `ip` is not set"))
    elif mode not in LB_IP_MODES:
        errs.append(not_supported(child(path, "ipMode"), mode, LB_IP_MODES))
    hostname = as_str(entry.get("hostname"))
    if hostname:
        errs += validate_dns1123_subdomain(hostname, child(path, "hostname"))
        if net.parse_ip(hostname) is not None:
            errs.append(
                invalid(child(path, "hostname"), hostname, "must be a DNS name, not an IP address")
            )
    return errs
