"""Validation of Node, Namespace, Event (core/v1) and EndpointSlice (discovery.k8s.io/v1).

Node follows ValidateNode/ValidateNodeUpdate (taints, podCIDRs), Namespace ValidateNamespace and
its status rule, Event the legacy core/v1 rules of ValidateEventCreate/Update, and EndpointSlice
pkg/apis/discovery/validation.
"""

from __future__ import annotations

from typing import Any

from . import _convert
from . import _k8s_names as names
from . import _k8s_net as net
from . import _quantity as quantity
from .errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_many,
)
from .validation_meta import (
    IS_NEGATIVE,
    as_dict,
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
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
    validate_qualified_name,
)

TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PODCIDR_CHANGE = 'node updates may not change podCIDR except from "" to valid'

# --- Node -------------------------------------------------------------------------------------


def validate_node(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta(obj, False, names.name_is_dns_subdomain)
    s = spec(obj)
    errs += _validate_taints(dicts(s.get("taints")))
    errs += _validate_node_resources(status(obj))
    cidrs = [as_str(c) for c in _convert.pod_cidrs(s)]
    path = "spec.podCIDRs"
    for i, cidr in enumerate(cidrs):
        errs += validate_cidr(cidr, index(path, i))
    if len(cidrs) > 1:
        parsed = [n for n in (net.parse_cidr(c) for c in cidrs) if n is not None]
        families = {n.version for n in parsed}
        if families != {4, 6} or len(cidrs) > 2:
            errs.append(
                invalid(path, cidrs, "may specify no more than one CIDR for each IP family")
            )
        seen: set[str] = set()
        for i, cidr in enumerate(cidrs):
            if cidr in seen:
                errs.append(duplicate(index(path, i), cidr))
            seen.add(cidr)
    return errs


def _validate_taints(taints: list[dict[str, Any]]) -> list[FieldError]:
    # Upstream roots taint paths at "metadata" (metadata.taints[0].key); kept so messages match.
    path = "metadata.taints"
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        taint_path = index(path, i)
        taint_key = as_str(taint.get("key"))
        errs += validate_qualified_name(taint_key, child(taint_path, "key"))
        value = as_str(taint.get("value"))
        problems = names.label_value(value)
        if problems:
            errs.append(invalid(child(taint_path, "value"), value, ";".join(problems)))
        effect = as_str(taint.get("effect"))
        if not effect:
            errs.append(required(child(taint_path, "effect")))
        elif effect not in TAINT_EFFECTS:
            errs.append(not_supported(child(taint_path, "effect"), effect, TAINT_EFFECTS))
        if (taint_key, effect) in seen:
            dup = duplicate(taint_path, taint)
            errs.append(
                FieldError(
                    dup.type, dup.field, "taints must be unique by key and effect pair", taint
                )
            )
            continue
        seen.add((taint_key, effect))
    return errs


def _validate_node_resources(st: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    for section in ("capacity", "allocatable"):
        for name, raw in as_dict(st.get(section)).items():
            q = quantity.parse(raw)
            if q is not None and q.value < 0:
                errs.append(invalid(f"status.{section}.{name}", str(q), IS_NEGATIVE))
    return errs


def validate_node_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old)
    errs += _validate_node_resources(status(new))
    addresses = dicts(status(new).get("addresses"))
    seen: list[dict[str, Any]] = []
    for i, address in enumerate(addresses):
        if address in seen:
            errs.append(duplicate(index("status.addresses", i), address))
        seen.append(address)
    old_cidrs = [as_str(c) for c in _convert.pod_cidrs(spec(old))]
    new_cidrs = [as_str(c) for c in _convert.pod_cidrs(spec(new))]
    if old_cidrs:
        if len(old_cidrs) != len(new_cidrs):
            errs.append(forbidden("spec.podCIDRs", PODCIDR_CHANGE))
        else:
            errs += [
                forbidden("spec.podCIDRs", PODCIDR_CHANGE)
                for a, b in zip(old_cidrs, new_cidrs, strict=True)
                if a != b
            ]
    old_provider = as_str(spec(old).get("providerID"))
    if old_provider and old_provider != as_str(spec(new).get("providerID")):
        errs.append(
            forbidden(
                "spec.providerID", 'node updates may not change providerID except from "" to valid'
            )
        )
    errs += _validate_taints(dicts(spec(new).get("taints")))
    if as_str(spec(new).get("externalID")) != as_str(spec(old).get("externalID")):
        errs.append(forbidden("spec.externalID", "may not be updated"))
    return errs


# --- Namespace --------------------------------------------------------------------------------


def validate_namespace(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta(obj, False, names.name_is_dns_label)
    errs += _validate_name_label(obj)
    for f in as_list(spec(obj).get("finalizers")):
        text = as_str(f)
        path = "spec.finalizers"
        errs += messages_as_invalid(path, text, names.qualified_name(text))
        if "/" not in text and text not in ("kubernetes", "orphan", "foregroundDeletion"):
            errs.append(
                invalid(
                    path,
                    text,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return errs


def _validate_name_label(obj: dict[str, Any]) -> list[FieldError]:
    """The registry pins kubernetes.io/metadata.name to the name; a different value is wrong."""
    labels = str_map(meta(obj).get("labels"))
    name = as_str(meta(obj).get("name"))
    if NAMESPACE_NAME_LABEL in labels and name and labels[NAMESPACE_NAME_LABEL] != name:
        return [invalid(key("metadata.labels", NAMESPACE_NAME_LABEL), labels, f"must be '{name}'")]
    return []


def validate_namespace_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return validate_object_meta_update(new, old) + _validate_name_label(new)


def validate_namespace_status_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old)
    phase = as_str(status(new).get("phase"))
    # Upstream capitalises "Phase" in this path; kept so messages match.
    if not meta(new).get("deletionTimestamp"):
        if phase != "Active":
            errs.append(
                invalid(
                    "status.Phase", phase, "may only be 'Active' if `deletionTimestamp` is empty"
                )
            )
    elif phase != "Terminating":
        errs.append(
            invalid(
                "status.Phase",
                phase,
                "may only be 'Terminating' if `deletionTimestamp` is not empty",
            )
        )
    return errs


# --- Event (core/v1) --------------------------------------------------------------------------

REPORTING_INSTANCE_MAX = 128
ACTION_MAX = 128
REASON_MAX = 128
NOTE_MAX = 1024


def validate_event(obj: dict[str, Any]) -> list[FieldError]:
    """legacyValidateEvent: the only rules core/v1 applies (events.k8s.io adds more)."""
    errs: list[FieldError] = []
    involved = as_dict(obj.get("involvedObject"))
    involved_ns = as_str(involved.get("namespace"))
    namespace = as_str(meta(obj).get("namespace"))
    ns_path = "involvedObject.namespace"
    mismatch = "does not match event.namespace"
    if not obj.get("eventTime"):
        if not involved_ns:
            if namespace not in ("", "default"):
                errs.append(invalid(ns_path, involved_ns, mismatch))
        elif namespace != involved_ns:
            errs.append(invalid(ns_path, involved_ns, mismatch))
    else:
        if not involved_ns and namespace not in ("default", "kube-system"):
            errs.append(invalid(ns_path, involved_ns, mismatch))
        errs += _validate_new_style_event(obj)
    for msg in names.dns1123_subdomain(namespace):
        errs.append(invalid("namespace", namespace, msg))
    return errs


def _validate_new_style_event(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    controller = as_str(obj.get("reportingComponent"))
    if not controller:
        errs.append(required("reportingController"))
    errs += messages_as_invalid("reportingController", controller, names.qualified_name(controller))
    for field_name, json_name, limit, required_ in (
        ("reportingInstance", "reportingInstance", REPORTING_INSTANCE_MAX, True),
        ("action", "action", ACTION_MAX, True),
        ("reason", "reason", REASON_MAX, True),
        ("message", "message", NOTE_MAX, False),
    ):
        value = as_str(obj.get(json_name))
        if required_ and not value:
            errs.append(required(field_name))
        if len(value.encode()) > limit:
            errs.append(invalid(field_name, "", f"can have at most {limit} characters"))
    return errs


EVENT_IMMUTABLE_FIELDS = (
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "action",
    "related",
    "reportingComponent",
    "reportingInstance",
)


def validate_event_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    # Through core/v1 only the legacy rules apply; the immutability checks are events.k8s.io's.
    return validate_event(new)


# --- EndpointSlice ----------------------------------------------------------------------------

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
PORT_PROTOCOLS = ["SCTP", "TCP", "UDP"]
MAX_TOPOLOGY_LABELS = 16
MAX_ADDRESSES = 100
MAX_PORTS = 20000
MAX_ENDPOINTS = 1000
MAX_ZONE_HINTS = 8


def validate_endpoint_slice(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta(obj, True, names.name_is_dns_subdomain, kube_finalizers=False)
    address_type = obj.get("addressType")
    if not address_type:
        errs.append(required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        errs.append(not_supported("addressType", address_type, ADDRESS_TYPES))
    errs += _validate_endpoints(as_list(obj.get("endpoints")), as_str(address_type))
    errs += _validate_slice_ports(as_list(obj.get("ports")))
    return errs


def validate_endpoint_slice_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old, kube_finalizers=False)
    errs += validate_endpoint_slice(new)
    new_type, old_type = as_str(new.get("addressType")), as_str(old.get("addressType"))
    if new_type != old_type:
        errs.append(invalid("addressType", new_type, "field is immutable"))
    return errs


def _validate_endpoints(endpoints: list[Any], address_type: str) -> list[FieldError]:
    path = "endpoints"
    if len(endpoints) > MAX_ENDPOINTS:
        return [too_many(path, len(endpoints), MAX_ENDPOINTS)]
    errs: list[FieldError] = []
    for i, raw in enumerate(endpoints):
        endpoint = as_dict(raw)
        ep_path = index(path, i)
        addr_path = child(ep_path, "addresses")
        addresses = [as_str(a) for a in as_list(endpoint.get("addresses"))]
        if not addresses:
            errs.append(required(addr_path, "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            errs.append(too_many(addr_path, len(addresses), MAX_ADDRESSES))
        for j, address in enumerate(addresses):
            errs += _validate_address(address, address_type, index(addr_path, j))
        node_name = endpoint.get("nodeName")
        if node_name is not None:
            text = as_str(node_name)
            errs += messages_as_invalid(
                child(ep_path, "nodeName"), text, names.name_is_dns_subdomain(text, False)
            )
        topology = str_map(endpoint.get("deprecatedTopology"))
        topology_path = child(ep_path, "deprecatedTopology")
        if len(topology) > MAX_TOPOLOGY_LABELS:
            errs.append(too_many(topology_path, len(topology), MAX_TOPOLOGY_LABELS))
        errs += validate_labels(topology, topology_path)
        if endpoint.get("hostname") is not None:
            errs += validate_dns1123_label(
                as_str(endpoint.get("hostname")), child(ep_path, "hostname")
            )
        hints = endpoint.get("hints")
        if hints is not None:
            errs += _validate_hints(as_dict(hints), child(ep_path, "hints"))
    return errs


def _validate_address(address: str, address_type: str, path: str) -> list[FieldError]:
    if address_type in ("IPv4", "IPv6"):
        errs: list[FieldError] = []
        ip = net.parse_ip(address)
        if ip is None or net.is_ipv4(ip) != (address_type == "IPv4"):
            errs.append(invalid(path, address, f"must be a valid {address_type} address"))
        # ValidateEndpointIP runs as well, so a garbage address gets both messages.
        if ip is None:
            return [*errs, invalid(path, address, "must be a valid IP address")]
        return errs + [invalid(path, address, m) for m in net.special_ip_problems(ip, address)]
    if address_type == "FQDN":
        if not address:
            return [required(path)]
        problem = names.fully_qualified_domain_name(address)
        return [] if problem is None else [invalid(path, problem[0], problem[1])]
    return []  # unknown address types are reported once, at addressType


def _validate_hints(hints: dict[str, Any], path: str) -> list[FieldError]:
    zones_path = child(path, "forZones")
    zones = dicts(hints.get("forZones"))
    if len(zones) > MAX_ZONE_HINTS:
        return [too_many(zones_path, len(zones), MAX_ZONE_HINTS)]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, zone in enumerate(zones):
        name = as_str(zone.get("name"))
        zone_path = child(index(zones_path, i), "name")
        if name in seen:
            errs.append(duplicate(zone_path, name))
        seen.add(name)
        errs += messages_as_invalid(zone_path, name, names.label_value(name))
    return errs


def _validate_slice_ports(ports: list[Any]) -> list[FieldError]:
    path = "ports"
    if len(ports) > MAX_PORTS:
        return [too_many(path, len(ports), MAX_PORTS)]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, raw in enumerate(ports):
        port = as_dict(raw)
        port_path = index(path, i)
        name = as_str(port.get("name"))
        if name:
            errs += validate_dns1123_label(name, child(port_path, "name"))
        if name in seen:
            errs.append(duplicate(child(port_path, "name"), name))
        seen.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(required(child(port_path, "protocol")))
        elif protocol not in PORT_PROTOCOLS:
            errs.append(not_supported(child(port_path, "protocol"), protocol, PORT_PROTOCOLS))
        # Upstream leaves the port number itself unchecked (any int32, or nil for "all ports").
        if port.get("appProtocol") is not None:
            errs += validate_qualified_name(
                as_str(port.get("appProtocol")), child(port_path, "appProtocol")
            )
    return errs
