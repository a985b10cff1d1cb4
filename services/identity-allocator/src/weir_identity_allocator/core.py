"""What needs an identity, decided from weir-k8s alone: no NATS, no clock.

`K8sView` holds the objects the allocator reads (namespaces, pods, nodes, network policies),
key by key, as the watch delivers them. `needs()` derives from it every label set something
needs right now — each pod's (once its namespace is known) and each policy CIDR's — and the
problems found on the way (a CIDR that does not parse), so the shell can log and count them.
Recomputed from the whole view every time: a restarted replica, or one that missed nothing,
decides the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from weir.models import (
    IdentityLabels,
    K8sObject,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
)

from . import labels as lb
from .index import IdentityIndex
from .labels import LabelHash

V = TypeVar("V")
_KINDS: dict[str, type[K8sObject]] = {
    "namespace": Namespace,
    "pod": Pod,
    "node": Node,
    "networkpolicy": NetworkPolicy,
}
# A pod that has finished keeps its object (and, in status, its old IP) until deleted; its IP
# may already belong to a new pod, and it needs no identity any more.
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class Problem:
    """Input that cannot be used: logged with its key, counted by `reason`, skipped."""

    key: str
    reason: str  # short and stable: a metric label
    detail: str


class K8sView:
    """The weir-k8s objects identity-allocator cares about, by key."""

    def __init__(self) -> None:
        self.namespaces: dict[str, Namespace] = {}  # by name
        self.pods: dict[str, Pod] = {}  # by key
        self.nodes: dict[str, Node] = {}  # by key
        self.policies: dict[str, NetworkPolicy] = {}  # by key

    def apply(self, key: str, value: K8sObject | None) -> Problem | None:
        """Record the latest value of `key` (None: deleted). Kinds not read here are ignored;
        a value of the wrong kind for its key is a problem, and the key counts as absent."""
        prefix = key.split(".", 1)[0]
        kind = _KINDS.get(prefix)
        if kind is None:
            return None
        problem = None
        if value is not None and not isinstance(value, kind):
            problem = Problem(key, "wrong-kind", f"holds a {type(value).__name__}")
            value = None
        if prefix == "namespace":
            name = key.split(".", 1)[-1]
            _set(self.namespaces, name, value if isinstance(value, Namespace) else None)
        elif prefix == "pod":
            _set(self.pods, key, value if isinstance(value, Pod) else None)
        elif prefix == "node":
            _set(self.nodes, key, value if isinstance(value, Node) else None)
        else:
            _set(self.policies, key, value if isinstance(value, NetworkPolicy) else None)
        return problem

    def relevant(self, key: str) -> bool:
        return key.split(".", 1)[0] in _KINDS


def _set(table: dict[str, V], key: str, value: V | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


@dataclass(slots=True)
class Needs:
    """Every label set something needs now, and who needs it."""

    label_sets: dict[LabelHash, IdentityLabels] = field(default_factory=dict)
    pods: dict[str, LabelHash] = field(default_factory=dict)  # pod key -> its label set
    cidrs: dict[str, LabelHash] = field(default_factory=dict)  # canonical prefix -> label set
    users: dict[LabelHash, list[str]] = field(default_factory=dict)  # label set -> k8s keys
    waiting: list[str] = field(default_factory=list)  # pods whose namespace is not known yet
    problems: list[Problem] = field(default_factory=list)

    def _need(self, labels: IdentityLabels, user: str) -> LabelHash:
        h = lb.label_hash(labels)
        self.label_sets.setdefault(h, labels)
        self.users.setdefault(h, []).append(user)
        return h


def wants_identity(pod: Pod) -> bool:
    """hostNetwork pods are the node (their traffic is the host's); finished pods are gone."""
    return not pod.host_network and pod.phase not in FINISHED_PHASES


def needs(view: K8sView) -> Needs:
    out = Needs()
    for key, pod in view.pods.items():
        if not wants_identity(pod):
            continue
        ns = view.namespaces.get(pod.meta.namespace)
        if ns is None:
            out.waiting.append(key)  # never an identity without its namespace's labels
            continue
        out.pods[key] = out._need(lb.pod_labels(pod, ns), key)
    for key, policy in sorted(view.policies.items()):
        for text in policy_prefixes(policy):
            try:
                prefix = lb.canonical_prefix(text)
            except lb.BadPrefix as e:
                out.problems.append(Problem(key, "bad-cidr", str(e)))
                continue
            if prefix in lb.WORLD_PREFIXES:
                continue  # the reserved world identity
            out.cidrs[prefix] = out._need(lb.cidr_labels(prefix), key)
    return out


def policy_prefixes(policy: NetworkPolicy) -> Iterator[str]:
    """Every ipBlock `cidr` and `except` entry of a policy, as written."""
    for rule in (*policy.ingress, *policy.egress):
        for peer in rule.peers:
            if peer.ip_block is not None:
                yield peer.ip_block.cidr
                yield from peer.ip_block.except_


def in_use(index: IdentityIndex, needed: Mapping[LabelHash, IdentityLabels]) -> set[int]:
    """Numbers something uses: those whose label set is needed, unless the set's labels key
    names another number (then this one is a leftover of a lost race or a crash)."""
    used: set[int] = set()
    for h in needed:
        holders = index.holders(h)
        if not holders:
            continue
        named = index.labels.get(h)
        if named is not None and named.value is not None and named.value.id in holders:
            used.add(named.value.id)
        elif named is None:
            used |= holders  # revivable: the allocator will publish one of them again
    return used
