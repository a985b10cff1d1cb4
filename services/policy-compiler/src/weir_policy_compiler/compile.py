"""One endpoint's policy: the pure function from the policies selecting a pod to its tables.

Per direction: not isolated (no selecting policy has that policyType) -> everything allowed;
isolated -> the union of what every selecting policy's rules allow for that direction, every
other packet denied under the cookie of the first isolating policy (by namespace/name).

A rule allows the product of its peers and its ports:
- peers: none listed -> any identity (0); selector peers -> the live pod identities they select;
  ipBlock peers -> the CIDR identities inside the block and outside its excepts;
- ports: none listed -> any protocol and port (0, 0); numbers and ranges as written; a named
  port -> the numbers that name has on the destination pod, for the rule's protocol: the local
  pod's for ingress, each remote pod's for egress (an entry per remote identity and number).

Entries are deduplicated (the first rule to allow a tuple names it) and sorted, so equal inputs
always give equal bytes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Set
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from weir.identity import ANY, Reserved
from weir.models import DirectionPolicy, EndpointPolicy, Pod, PolicyEntry, Protocol

from .cookies import HOST_TEXT, CookieBook, Direction, default_text, rule_text
from .plan import PolicyPlan, RulePlan
from .ports import ANY_PORT, ANY_PROTOCOL, PortSpec, resolve_named
from .selectors import BlockSelector, PeerSelector


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    # Ingress from the node itself is allowed to isolated pods, as Cilium's allow-localhost:
    # the kubelet's probes come from there.
    allow_host_ingress: bool = True
    # Upstream applies ipBlock to pod addresses too; False gives Cilium's behaviour.
    ipblock_matches_pods: bool = True


class View(TypingProtocol):
    """What compiling one endpoint reads from the rest of the cluster (the core's indexes)."""

    def selected(self, selector: PeerSelector) -> Set[int]: ...

    def allowed(self, block: BlockSelector) -> Set[int]: ...

    def pods_of(self, identity: int) -> Iterable[Pod]: ...

    def pods_with_port(self, name: str, protocol: Protocol) -> Iterable[tuple[Pod, int]]: ...

    def cidr_identity(self, address: ipaddress.IPv4Address) -> int | None: ...


_Key = tuple[int, int, int, int]  # identity, protocol, port, end port


def compile_endpoint(
    pod: Pod,
    identity: int,
    plans: Iterable[PolicyPlan],
    view: View,
    settings: Settings,
) -> EndpointPolicy:
    """`plans` are the policies selecting `pod` (any order)."""
    ordered = sorted(plans, key=lambda p: (p.namespace, p.name))
    book = CookieBook()
    return EndpointPolicy(
        node=pod.node_name,
        pod_namespace=pod.meta.namespace,
        pod_name=pod.meta.name,
        pod_uid=pod.meta.uid,
        identity=identity,
        ingress=_direction(Direction.INGRESS, pod, ordered, view, settings, book),
        egress=_direction(Direction.EGRESS, pod, ordered, view, settings, book),
        ipblock_matches_pods=settings.ipblock_matches_pods,
        cookies=dict(sorted(book.names.items())),
    )


def _direction(
    direction: Direction,
    pod: Pod,
    plans: list[PolicyPlan],
    view: View,
    settings: Settings,
    book: CookieBook,
) -> DirectionPolicy:
    isolating = [p for p in plans if p.rules(direction) is not None]
    if not isolating:
        return DirectionPolicy(enforced=False)
    first = isolating[0]
    default = book.add(default_text(first.namespace, first.name, direction))
    entries: dict[_Key, int] = {}
    if direction is Direction.INGRESS and settings.allow_host_ingress:
        entries[(int(Reserved.HOST), ANY_PROTOCOL, ANY_PORT, ANY_PORT)] = book.add(HOST_TEXT)
    for plan in isolating:
        for rule in plan.rules(direction) or ():
            fresh = _rule_entries(rule, pod, view, settings) - entries.keys()
            if not fresh:
                continue  # nothing this rule allows is not allowed already: no cookie to name
            cookie = book.add(rule_text(plan.namespace, plan.name, direction, rule.index))
            entries.update(dict.fromkeys(fresh, cookie))
    return DirectionPolicy(
        enforced=True,
        default_cookie=default,
        entries=tuple(
            PolicyEntry(identity=i, protocol=proto, port=port, end_port=end, cookie=cookie)
            for (i, proto, port, end), cookie in sorted(entries.items())
        ),
    )


def _rule_entries(rule: RulePlan, pod: Pod, view: View, settings: Settings) -> set[_Key]:
    remotes = _remote_identities(rule, view)
    if rule.any_port:
        return {(i, ANY_PROTOCOL, ANY_PORT, ANY_PORT) for i in remotes}
    out = {(i, p.protocol, p.port, p.end_port) for i in remotes for p in rule.numeric_ports}
    for spec in rule.named_ports:
        if rule.direction is Direction.INGRESS:
            # The destination is this pod: its own container ports decide, for every peer.
            numbers = resolve_named(spec, pod.ports)
            out |= {(i, spec.protocol, n, n) for i in remotes for n in numbers}
        else:
            out |= _egress_named(rule, spec, view, settings)
    return out


def _remote_identities(rule: RulePlan, view: View) -> set[int]:
    if rule.any_peer:
        return {int(ANY)}
    out: set[int] = set()
    for selector in rule.selectors:
        out |= view.selected(selector)
    for block in rule.blocks:
        out |= view.allowed(block)
    return out


def _egress_named(rule: RulePlan, spec: PortSpec, view: View, settings: Settings) -> set[_Key]:
    """A named port towards remote pods: resolved on each destination pod, so each entry names
    the remote identity the number belongs to. A name no destination has opens nothing."""
    out: set[_Key] = set()
    if rule.any_peer:
        for remote, identity in view.pods_with_port(spec.name, spec.protocol_name):
            out |= {(identity, spec.protocol, n, n) for n in resolve_named(spec, remote.ports)}
        return out
    for selector in rule.selectors:
        for identity in view.selected(selector):
            for remote in view.pods_of(identity):
                out |= {(identity, spec.protocol, n, n) for n in resolve_named(spec, remote.ports)}
    if settings.ipblock_matches_pods:
        # Only pods inside the block have container ports to resolve; the entry is for the
        # CIDR identity their address resolves to (which the block allows).
        for block in rule.blocks:
            allowed = view.allowed(block)
            for remote, _ in view.pods_with_port(spec.name, spec.protocol_name):
                numbers = resolve_named(spec, remote.ports)
                for text in remote.pod_ips:
                    address = _ipv4(text)
                    if address is None or not block.contains(address):
                        continue
                    # No CIDR prefix covering the address: the datapath sees it as WORLD.
                    cidr_id = view.cidr_identity(address) or int(Reserved.WORLD)
                    if cidr_id in allowed:
                        out |= {(cidr_id, spec.protocol, n, n) for n in numbers}
    return out


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address if isinstance(address, ipaddress.IPv4Address) else None
