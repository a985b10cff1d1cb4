"""NetworkPolicy (networking.k8s.io/v1) validation, after pkg/apis/networking/validation.

Rules and wording follow ValidateNetworkPolicy/ValidateNetworkPolicyUpdate: ports (protocol, port
number or IANA name, endPort), peers (exactly one kind of selector, or an ipBlock alone), ipBlock
CIDRs and their `except` subsets, and policyTypes. On update a CIDR already present in the old
policy is accepted as is, the way upstream lets pre-existing values ratchet.
"""

from __future__ import annotations

from typing import Any

from . import _k8s_names as names
from . import _k8s_net as net
from .errors import FieldError, forbidden, invalid, not_supported, required
from .validation_meta import (
    as_int,
    as_list,
    as_str,
    child,
    dicts,
    index,
    messages_as_invalid,
    spec,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)

PROTOCOLS = ["TCP", "UDP", "SCTP"]
POLICY_TYPES = ["Ingress", "Egress"]


def validate_network_policy(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta(obj, True, names.name_is_dns_subdomain, kube_finalizers=False)
    return errs + _validate_spec(spec(obj), frozenset())


def validate_network_policy_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new, old, kube_finalizers=False)
    return errs + _validate_spec(spec(new), _existing_cidrs(spec(old)))


def _existing_cidrs(old_spec: dict[str, Any]) -> frozenset[str]:
    """Every CIDR of the old policy, which an update may keep even if now considered invalid."""
    cidrs: set[str] = set()
    for section, peers_key in (("ingress", "from"), ("egress", "to")):
        for rule in dicts(old_spec.get(section)):
            for peer in dicts(rule.get(peers_key)):
                block = peer.get("ipBlock")
                if isinstance(block, dict):
                    cidrs.add(as_str(block.get("cidr")))
                    cidrs.update(as_str(c) for c in as_list(block.get("except")))
    return frozenset(cidrs)


def _validate_spec(s: dict[str, Any], allowed_cidrs: frozenset[str]) -> list[FieldError]:
    path = "spec"
    errs = validate_label_selector(s.get("podSelector", {}), child(path, "podSelector"))
    for section, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(dicts(s.get(section))):
            rule_path = index(child(path, section), i)
            for j, port in enumerate(dicts(rule.get("ports"))):
                errs += validate_port(port, index(child(rule_path, "ports"), j))
            for j, peer in enumerate(dicts(rule.get(peers_key))):
                errs += validate_peer(peer, index(child(rule_path, peers_key), j), allowed_cidrs)
    errs += _validate_policy_types(s.get("policyTypes"), child(path, "policyTypes"))
    return errs


def _validate_policy_types(value: Any, path: str) -> list[FieldError]:
    types = as_list(value)
    if len(types) > len(POLICY_TYPES):
        return [invalid(path, types, "may not specify more than two policyTypes")]
    return [
        not_supported(index(path, i), t, POLICY_TYPES)
        for i, t in enumerate(types)
        if t not in POLICY_TYPES
    ]


def validate_port(port: dict[str, Any], path: str) -> list[FieldError]:
    """ValidateNetworkPolicyPort."""
    errs: list[FieldError] = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        errs.append(not_supported(child(path, "protocol"), protocol, PROTOCOLS))
    value = port.get("port")
    end_port = as_int(port.get("endPort"))
    end_path = child(path, "endPort")
    if value is None:
        if end_port is not None:
            errs.append(
                invalid(end_path, end_port, "may not be specified when `port` is not specified")
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        errs += messages_as_invalid(child(path, "port"), value, names.port_num(value))
        if end_port is not None:
            if end_port < value:
                errs.append(invalid(end_path, end_port, "must be greater than or equal to `port`"))
            errs += messages_as_invalid(end_path, end_port, names.port_num(end_port))
    else:
        if end_port is not None:
            errs.append(
                invalid(end_path, end_port, "may not be specified when `port` is non-numeric")
            )
        text = as_str(value)
        errs += messages_as_invalid(child(path, "port"), text, names.port_name(text))
    return errs


def validate_peer(
    peer: dict[str, Any], path: str, allowed_cidrs: frozenset[str] = frozenset()
) -> list[FieldError]:
    """ValidateNetworkPolicyPeer: one of the selectors (or both), or an ipBlock alone."""
    errs: list[FieldError] = []
    kinds = 0
    for selector_key in ("podSelector", "namespaceSelector"):
        if peer.get(selector_key) is not None:
            kinds += 1
            errs += validate_label_selector(peer[selector_key], child(path, selector_key))
    block = peer.get("ipBlock")
    if block is not None:
        kinds += 1
        errs += validate_ip_block(
            block if isinstance(block, dict) else {}, child(path, "ipBlock"), allowed_cidrs
        )
    if kinds == 0:
        errs.append(required(path, "must specify a peer"))
    elif kinds > 1 and block is not None:
        errs.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def validate_ip_block(
    block: dict[str, Any], path: str, allowed_cidrs: frozenset[str] = frozenset()
) -> list[FieldError]:
    """ValidateIPBlock: cidr required and valid; each `except` valid and strictly inside it."""
    cidr = as_str(block.get("cidr"))
    cidr_path = child(path, "cidr")
    if not cidr:
        return [required(cidr_path)]
    network = net.parse_cidr(cidr)
    if network is None:
        # Upstream never re-checks a CIDR the stored policy already had; that one is unparsable
        # too, so it stops here either way.
        return [] if cidr in allowed_cidrs else [invalid(cidr_path, cidr, net.CIDR_MSG)]
    errs: list[FieldError] = []
    for i, raw in enumerate(as_list(block.get("except"))):
        except_path = index(child(path, "except"), i)
        text = as_str(raw)
        sub = net.parse_cidr(text)
        if sub is None:
            if text not in allowed_cidrs:
                errs.append(invalid(except_path, text, net.CIDR_MSG))
            continue
        if (
            sub.version != network.version
            or sub.network_address not in network
            or network.prefixlen >= sub.prefixlen
        ):
            errs.append(invalid(except_path, text, "must be a strict subset of `cidr`"))
    return errs
