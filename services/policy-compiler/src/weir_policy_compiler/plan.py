"""A NetworkPolicy read once into what compiling needs: which directions it isolates, and per
rule the peers (selector keys, blocks, or every peer) and ports — plus what could not be used.

Reading is where "cannot be used" is decided, and it always fails closed: a peer or port that
cannot be compiled (an IPv6 ipBlock, an invalid selector, an impossible port range) contributes
no allow, and a rule left with no usable peer (or no usable port) allows nothing — it never
widens to "every peer" the way an empty list would. The policy still isolates what it selects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from weir.labels import LabelSelector
from weir.models import NetworkPolicy, PolicyPeer, PolicyRule, PolicyType, Protocol

from .cookies import Direction
from .ports import PortSpec, parse_port
from .selectors import (
    BlockSelector,
    PeerSelector,
    Selector,
    parse_block,
    selector_problems,
)

PolicyRef = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class RulePlan:
    direction: Direction
    index: int  # position in spec.ingress / spec.egress
    any_peer: bool  # from/to was empty: every peer, any address
    selectors: tuple[PeerSelector, ...]
    blocks: tuple[BlockSelector, ...]
    any_port: bool  # ports was empty: every port of every protocol
    ports: tuple[PortSpec, ...]

    @property
    def numeric_ports(self) -> tuple[PortSpec, ...]:
        return tuple(p for p in self.ports if not p.name)

    @property
    def named_ports(self) -> tuple[PortSpec, ...]:
        return tuple(p for p in self.ports if p.name)


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    namespace: str
    name: str
    subject: LabelSelector  # spec.podSelector, in the policy's namespace
    ingress: tuple[RulePlan, ...] | None  # None: the policy does not isolate ingress
    egress: tuple[RulePlan, ...] | None
    problems: tuple[str, ...] = ()
    # Which object the plan came from (for Events); not part of what it means.
    uid: str = field(default="", compare=False)
    resource_version: str = field(default="", compare=False)

    @property
    def ref(self) -> PolicyRef:
        return (self.namespace, self.name)

    def rules(self, direction: Direction) -> tuple[RulePlan, ...] | None:
        return self.ingress if direction is Direction.INGRESS else self.egress

    def all_rules(self) -> tuple[RulePlan, ...]:
        return (self.ingress or ()) + (self.egress or ())

    def selectors(self) -> set[PeerSelector]:
        return {s for r in self.all_rules() for s in r.selectors}

    def blocks(self) -> set[BlockSelector]:
        return {b for r in self.all_rules() for b in r.blocks}

    def egress_port_names(self) -> set[tuple[str, Protocol]]:
        """(name, protocol) of every named port in an egress rule: these entries depend on
        remote pods' container ports."""
        return {(p.name, p.protocol_name) for r in self.egress or () for p in r.named_ports}


def policy_types(policy: NetworkPolicy) -> set[PolicyType]:
    """spec.policyTypes, defaulted as the API does when absent: Ingress always, Egress when
    there are egress rules (normalization defaults it already; this does not rely on that)."""
    if policy.policy_types:
        return set(policy.policy_types)
    return {PolicyType.INGRESS} | ({PolicyType.EGRESS} if policy.egress else set())


def plan_policy(policy: NetworkPolicy) -> PolicyPlan:
    problems: list[str] = []
    problems += selector_problems(policy.pod_selector, "spec.podSelector")
    types = policy_types(policy)
    ingress = egress = None
    if PolicyType.INGRESS in types:
        ingress = _rules(policy, Direction.INGRESS, policy.ingress, problems)
    if PolicyType.EGRESS in types:
        egress = _rules(policy, Direction.EGRESS, policy.egress, problems)
    return PolicyPlan(
        namespace=policy.meta.namespace,
        name=policy.meta.name,
        subject=policy.pod_selector,
        ingress=ingress,
        egress=egress,
        problems=tuple(problems),
        uid=policy.meta.uid,
        resource_version=policy.meta.resource_version,
    )


def _rules(
    policy: NetworkPolicy,
    direction: Direction,
    rules: tuple[PolicyRule, ...],
    problems: list[str],
) -> tuple[RulePlan, ...]:
    field_name = "from" if direction is Direction.INGRESS else "to"
    out = []
    for i, rule in enumerate(rules):
        where = f"spec.{direction}[{i}]"
        selectors: list[PeerSelector] = []
        blocks: list[BlockSelector] = []
        for j, peer in enumerate(rule.peers):
            got = _peer(policy.meta.namespace, peer, f"{where}.{field_name}[{j}]")
            if isinstance(got, str):
                problems.append(got)
            elif isinstance(got, PeerSelector):
                selectors.append(got)
            else:
                blocks.append(got)
        ports: list[PortSpec] = []
        for j, port in enumerate(rule.ports):
            spec = parse_port(port, f"{where}.ports[{j}]")
            if isinstance(spec, str):
                problems.append(spec)
            else:
                ports.append(spec)
        out.append(
            RulePlan(
                direction=direction,
                index=i,
                any_peer=not rule.peers,
                selectors=tuple(dict.fromkeys(selectors)),
                blocks=tuple(dict.fromkeys(blocks)),
                any_port=not rule.ports,
                ports=tuple(dict.fromkeys(ports)),
            )
        )
    return tuple(out)


def _peer(namespace: str, peer: PolicyPeer, where: str) -> PeerSelector | BlockSelector | str:
    has_selector = peer.pod_selector is not None or peer.namespace_selector is not None
    if peer.ip_block is not None:
        if has_selector:
            return f"{where}: ipBlock cannot be combined with a selector"
        return parse_block(peer.ip_block.cidr, peer.ip_block.except_, where)
    if not has_selector:
        return f"{where}: a peer needs podSelector, namespaceSelector or ipBlock"
    problems = []
    if peer.pod_selector is not None:
        problems += selector_problems(peer.pod_selector, f"{where}.podSelector")
    if peer.namespace_selector is not None:
        problems += selector_problems(peer.namespace_selector, f"{where}.namespaceSelector")
    if problems:
        return "; ".join(problems)
    return PeerSelector(
        namespace=namespace if peer.namespace_selector is None else None,
        pods=Selector.of(peer.pod_selector) if peer.pod_selector is not None else None,
        namespaces=(
            Selector.of(peer.namespace_selector) if peer.namespace_selector is not None else None
        ),
    )
