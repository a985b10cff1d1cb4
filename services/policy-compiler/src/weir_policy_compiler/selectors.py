"""What a NetworkPolicy peer selects, as hashable keys matched against identities.

A `from`/`to` peer becomes either a `PeerSelector` (podSelector and/or namespaceSelector,
matched against a pod identity's labels) or a `BlockSelector` (ipBlock, matched against CIDR
identities' prefixes). Both are hashable by their meaning, so two policies with the same peer
share one entry in the selector caches (index.py) and one selection.

Semantics, as upstream:
- podSelector alone: pods in the policy's own namespace whose labels match;
- namespaceSelector alone: every pod in namespaces whose labels match;
- both: pods matching the podSelector in namespaces matching the namespaceSelector (AND);
- ipBlock: addresses inside `cidr` and outside every `except`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from weir.labels import LabelSelector, Operator
from weir.models import IdentityLabels

# The API server sets this label on every namespace (immutable, since 1.21); it is added here
# too so a namespaceSelector on the name works even if an identity's label set lacks it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# The only operators a NetworkPolicy selector may use (Gt/Lt exist only in the string form).
_POLICY_OPERATORS = frozenset(
    {Operator.IN, Operator.NOT_IN, Operator.EXISTS, Operator.DOES_NOT_EXIST}
)

SelectorKey = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, tuple[str, ...]], ...]]


def selector_key(selector: LabelSelector) -> SelectorKey:
    """A selector's meaning as a hashable value (order of labels and values does not matter)."""
    return (
        tuple(sorted(selector.match_labels.items())),
        tuple(
            sorted(
                (r.key, str(r.operator), tuple(sorted(set(r.values))))
                for r in selector.match_expressions
            )
        ),
    )


def selector_problems(selector: LabelSelector, where: str) -> list[str]:
    """Why a selector cannot be trusted in a NetworkPolicy (the API server would reject it)."""
    problems = []
    for r in selector.match_expressions:
        if r.operator not in _POLICY_OPERATORS:
            problems.append(f"{where}: operator {r.operator} is not valid in a label selector")
        elif r.operator in (Operator.IN, Operator.NOT_IN) and not r.values:
            problems.append(f"{where}: operator {r.operator} on {r.key!r} needs values")
        elif r.operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and r.values:
            problems.append(f"{where}: operator {r.operator} on {r.key!r} takes no values")
    return problems


@dataclass(frozen=True, slots=True)
class Selector:
    """A label selector compared by meaning; matching uses weir.labels, the one matcher."""

    key: SelectorKey
    selector: LabelSelector = field(compare=False, hash=False)

    @classmethod
    def of(cls, selector: LabelSelector) -> Selector:
        return cls(selector_key(selector), selector)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.selector.matches(labels)


@dataclass(frozen=True, slots=True)
class PeerSelector:
    """Pods a peer selects. `namespace` is set (the policy's own) when the peer has no
    namespaceSelector; `pods` is None when it has no podSelector (every pod)."""

    namespace: str | None
    pods: Selector | None
    namespaces: Selector | None

    def matches(self, labels: IdentityLabels) -> bool:
        if not labels.namespace:  # a CIDR or reserved identity: never a pod
            return False
        if self.namespace is not None and labels.namespace != self.namespace:
            return False
        if self.namespaces is not None and not self.namespaces.matches(namespace_labels(labels)):
            return False
        return self.pods is None or self.pods.matches(labels.pod_labels)

    def describe(self) -> str:
        parts = []
        if self.namespace is not None:
            parts.append(f"pods in {self.namespace}")
        if self.namespaces is not None:
            parts.append(f"namespaces {self.namespaces.key}")
        if self.pods is not None:
            parts.append(f"pods {self.pods.key}")
        return " and ".join(parts)


def namespace_labels(labels: IdentityLabels) -> Mapping[str, str]:
    if NAMESPACE_NAME_LABEL in labels.namespace_labels:
        return labels.namespace_labels
    return {**labels.namespace_labels, NAMESPACE_NAME_LABEL: labels.namespace}


@dataclass(frozen=True, slots=True)
class BlockSelector:
    """An ipBlock: the CIDR identities whose prefix lies inside `cidr` and inside no `except`.

    The datapath resolves an address to the identity of its longest matching prefix, so an
    address inside an except resolves to the except's own identity (identity-allocator gives
    each one) and is not allowed, while the rest of the block resolves to the block's identity
    or to a more specific prefix inside it.
    """

    cidr: IPv4Network
    excepts: tuple[IPv4Network, ...]

    def matches(self, prefix: IPv4Network) -> bool:
        return prefix.subnet_of(self.cidr) and not any(prefix.subnet_of(e) for e in self.excepts)

    def overlaps(self, prefix: IPv4Network) -> bool:
        """True when `prefix` lies inside the block at all (an except included): a change of
        such a prefix can change what addresses inside the block resolve to."""
        return prefix.subnet_of(self.cidr)

    def contains(self, address: IPv4Address) -> bool:
        return address in self.cidr and not any(address in e for e in self.excepts)

    def describe(self) -> str:
        excepts = f" except {', '.join(map(str, self.excepts))}" if self.excepts else ""
        return f"{self.cidr}{excepts}"


def parse_block(cidr: str, excepts: tuple[str, ...], where: str) -> BlockSelector | str:
    """The block, or why it cannot be used. Weir's datapath is IPv4-only."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return f"{where}: ipBlock.cidr {cidr!r} is not a CIDR"
    if not isinstance(net, IPv4Network):
        return f"{where}: ipBlock.cidr {cidr} is IPv6; Weir's datapath is IPv4-only"
    out = []
    for text in excepts:
        try:
            e = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return f"{where}: ipBlock.except {text!r} is not a CIDR"
        if not isinstance(e, IPv4Network) or not e.subnet_of(net):
            # Upstream validation requires every except strictly inside the cidr; an except we
            # cannot place could mean anything, so the peer is not used (fail closed).
            return f"{where}: ipBlock.except {text} is not inside {net}"
        out.append(e)
    return BlockSelector(net, tuple(sorted(set(out))))
