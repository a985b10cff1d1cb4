"""What policy-compiler decides, with no I/O: which weir-policy writes follow from each change.

`Compiler` takes the changes of its three input buckets one at a time — namespaces, pods and
NetworkPolicies (weir-k8s), identities (weir-identities), ipcache entries (weir-ipcache) — keeps
the indexes that say which endpoints each change can affect, and marks only those dirty.
`flush()` recompiles the dirty endpoints (compile.py) and returns the writes whose bytes differ
from what the bucket holds. Nothing is ever recompiled wholesale after start:

- a pod change recompiles the pod itself (its labels decide which policies select it, its
  container ports resolve its ingress named ports) and, when its identity changes, every
  endpoint whose policies' peers select the old or the new identity;
- a policy change recompiles the endpoints it selected before and selects now;
- an identity (or ipcache prefix) appearing or disappearing recompiles the endpoints whose
  policies have a peer selecting it (SelectorCache, CidrTable in index.py);
- a remote pod's named container ports or addresses changing recompiles the endpoints whose
  policies open that port name in an egress rule (resolved per destination pod).

An endpoint exists for every pod bound to a node (spec.nodeName), not on the host network, once
its identity is known — whether or not any policy selects it: its existence tells node-loader
that the pod's policy is known. A pod's identity is the one weir-identities holds for its label
set (its labels minus churny ones, its namespace's labels), else the one weir-ipcache gives its
address, else the last one it had; identities count as in use (selectable) while some pod has
them or ipcache maps an address to them.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from weir.catalog import policy_key
from weir.identity import security_labels
from weir.models import (
    EndpointPolicy,
    Identity,
    IdentityLabels,
    IPCacheEntry,
    IPCacheKind,
    Namespace,
    NetworkPolicy,
    Pod,
    Protocol,
)

from .compile import Settings, compile_endpoint
from .index import CidrTable, MultiIndex, SelectorCache
from .plan import PolicyPlan, PolicyRef, plan_policy
from .ports import named_ports
from .selectors import BlockSelector, PeerSelector

PodRef = tuple[str, str]  # (namespace, name)
LabelSet = tuple[
    str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], str, str
]  # an identity's labels, hashable


class Cause(StrEnum):
    """Why an endpoint was recompiled (a metric label)."""

    START = "start"
    POD = "pod"
    NAMESPACE = "namespace"
    POLICY = "policy"
    IDENTITY = "identity"
    IPCACHE = "ipcache"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Write:
    """Put `value` at `key`, or delete `key` when `value` is None. `context` is the trace
    context of the change that caused it (opaque here)."""

    key: str
    value: bytes | None
    context: Any = None

    @property
    def is_delete(self) -> bool:
        return self.value is None


@dataclass(frozen=True, slots=True)
class Report:
    """A policy that cannot be fully used (`problems`), or is usable again (no problems)."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    problems: tuple[str, ...]


def label_set(labels: IdentityLabels) -> LabelSet:
    return (
        labels.namespace,
        tuple(sorted(labels.pod_labels.items())),
        tuple(sorted(labels.namespace_labels.items())),
        labels.cidr,
        labels.reserved,
    )


@dataclass(frozen=True, slots=True)
class _RemoteView:
    """What other endpoints' tables can depend on about a pod (egress named ports)."""

    identity: int | None
    named: frozenset[tuple[str, Protocol]]
    addresses: tuple[str, ...]


_NO_REMOTE = _RemoteView(None, frozenset(), ())


class Compiler:
    def __init__(self, settings: Settings, encode: Callable[[EndpointPolicy], bytes]) -> None:
        self.settings = settings
        self._encode = encode
        # inputs
        self._pods: dict[PodRef, Pod] = {}
        self._pods_in_ns = MultiIndex[str, PodRef]()
        self._namespaces: dict[str, dict[str, str]] = {}
        self._plans: dict[PolicyRef, PolicyPlan] = {}
        self._plans_in_ns = MultiIndex[str, PolicyRef]()
        self._identity_keys: dict[str, Identity] = {}
        self._id_labels: dict[int, IdentityLabels] = {}
        self._ids_with = MultiIndex[LabelSet, int]()  # from id.<n>
        self._owner_of: dict[LabelSet, int] = {}  # from labels.<hash>: the authoritative number
        self._ipcache: dict[str, IPCacheEntry] = {}
        self._ipcache_of_pod: dict[PodRef, dict[str, int]] = {}
        self._ipcache_use: Counter[int] = Counter()
        # derived
        self._labels_of_pod: dict[PodRef, LabelSet] = {}
        self._pods_with_labels = MultiIndex[LabelSet, PodRef]()
        self._identity_of: dict[PodRef, int] = {}
        self._last_identity: dict[PodRef, tuple[str, int]] = {}  # (pod uid, identity)
        self._pods_of = MultiIndex[int, PodRef]()
        self._live: dict[int, IdentityLabels] = {}  # pod identities in use: selectable
        self._selectors = SelectorCache()
        self._cidrs = CidrTable()
        self._subjects = MultiIndex[PolicyRef, PodRef]()
        self._policies_of = MultiIndex[PodRef, PolicyRef]()
        self._port_users = MultiIndex[tuple[str, Protocol], PolicyRef]()
        self._named_pods = MultiIndex[tuple[str, Protocol], PodRef]()
        # output
        self._mirror: dict[str, bytes] = {}  # what weir-policy holds, as we believe
        self._written: dict[PodRef, str] = {}
        self._entries: dict[str, int] = {}
        self._dirty: dict[PodRef, tuple[Cause, Any]] = {}
        self._stale: dict[str, Any] = {}
        self._started = False
        self._reports: list[Report] = []
        self._reported: dict[PolicyRef, tuple[str, ...]] = {}
        self.recomputations: Counter[Cause] = Counter()

    # --- figures ------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    @property
    def pending(self) -> int:
        """Endpoints (and stale keys) waiting for the next flush."""
        return len(self._dirty) + len(self._stale)

    @property
    def endpoints(self) -> int:
        return len(self._written)

    @property
    def entries(self) -> int:
        return sum(self._entries.values())

    @property
    def unusable_policies(self) -> int:
        return sum(1 for p in self._plans.values() if p.problems)

    def take_reports(self) -> list[Report]:
        out, self._reports = self._reports, []
        return out

    # --- the output bucket --------------------------------------------------------------------

    def load_output(self, held: Mapping[str, tuple[bytes, EndpointPolicy | None]]) -> None:
        """What weir-policy holds at start (value None: undecodable). Its keys are compared
        with what compiles, and the identities in it are remembered as each pod's last one."""
        for key, (data, value) in held.items():
            self._mirror[key] = data
            if value is not None and value.identity:
                ref = (value.pod_namespace, value.pod_name)
                self._written.setdefault(ref, key)
                self._last_identity[ref] = (value.pod_uid, value.identity)

    def start(self, context: Any = None) -> None:
        """The initial replays are applied: compile every endpoint, delete every key that
        belongs to no endpoint."""
        self._started = True
        wanted = {ref: key for ref in self._pods if (key := self._endpoint_key(ref)) is not None}
        # A key loaded for a pod that is gone, or now compiles to another key, is stale.
        self._written = {r: k for r, k in self._written.items() if wanted.get(r) == k}
        self._last_identity = {r: v for r, v in self._last_identity.items() if r in self._pods}
        keep = set(wanted.values())
        for key in self._mirror:
            if key not in keep:
                self._stale[key] = context
        for ref in self._pods:
            self._mark(ref, Cause.START, context)

    def flush(self) -> list[Write]:
        """Recompile the dirty endpoints: the writes that bring weir-policy up to date."""
        if not self._started:
            return []
        writes: list[Write] = []
        owned = set(self._written.values())
        for key, ctx in sorted(self._stale.items()):
            if key not in owned and self._mirror.pop(key, None) is not None:
                self._entries.pop(key, None)
                writes.append(Write(key, None, ctx))
        self._stale.clear()
        dirty, self._dirty = self._dirty, {}
        for ref in sorted(dirty):
            cause, ctx = dirty[ref]
            writes.extend(self._compile(ref, cause, ctx))
        return writes

    def forget(self, key: str, *, was_delete: bool) -> None:
        """A write of `key` failed: what the bucket holds there is unknown; try again."""
        if was_delete:
            self._mirror[key] = b""  # unknown, so the retried delete is not skipped
            self._stale[key] = None
            return
        self._mirror.pop(key, None)
        for ref, written in self._written.items():
            if written == key:
                self._mark(ref, Cause.RETRY, None)

    def _compile(self, ref: PodRef, cause: Cause, ctx: Any) -> list[Write]:
        writes = []
        key = self._endpoint_key(ref)
        old_key = self._written.get(ref)
        if old_key is not None and old_key != key:
            # Deleted, unbound, moved to another node or onto the host network.
            del self._written[ref]
            self._entries.pop(old_key, None)
            if self._mirror.pop(old_key, None) is not None:
                writes.append(Write(old_key, None, ctx))
        if key is None:
            return writes
        pod = self._pods[ref]
        policy = compile_endpoint(
            pod,
            self._identity_of[ref],
            [self._plans[p] for p in self._policies_of.get(ref)],
            self,
            self.settings,
        )
        self.recomputations[cause] += 1
        data = self._encode(policy)
        self._written[ref] = key
        self._entries[key] = len(policy.ingress.entries) + len(policy.egress.entries)
        if self._mirror.get(key) != data:
            self._mirror[key] = data
            writes.append(Write(key, data, ctx))
        return writes

    def _endpoint_key(self, ref: PodRef) -> str | None:
        pod = self._pods.get(ref)
        if pod is None or not pod.node_name or pod.host_network or ref not in self._identity_of:
            return None
        return policy_key(pod.node_name, ref[0], ref[1])

    # --- compile.View -------------------------------------------------------------------------

    def selected(self, selector: PeerSelector) -> Set[int]:
        return self._selectors.selected(selector)

    def allowed(self, block: BlockSelector) -> Set[int]:
        return self._cidrs.allowed(block)

    def pods_of(self, identity: int) -> Iterable[Pod]:
        return [self._pods[r] for r in sorted(self._pods_of.get(identity))]

    def pods_with_port(self, name: str, protocol: Protocol) -> Iterable[tuple[Pod, int]]:
        return [
            (self._pods[r], self._identity_of[r])
            for r in sorted(self._named_pods.get((name, protocol)))
            if r in self._identity_of
        ]

    def cidr_identity(self, address: ipaddress.IPv4Address) -> int | None:
        return self._cidrs.lookup(address)

    # --- weir-k8s -----------------------------------------------------------------------------

    def namespace_changed(self, name: str, ns: Namespace | None, context: Any = None) -> None:
        labels = dict(ns.meta.labels) if ns is not None else None
        if self._namespaces.get(name) == labels:
            return
        if labels is None:
            del self._namespaces[name]
        else:
            self._namespaces[name] = labels
        # Namespace labels are part of every pod identity in it; they select no subjects.
        for ref in sorted(self._pods_in_ns.get(name)):
            self._refresh_identity(ref, Cause.NAMESPACE, context)

    def pod_changed(self, namespace: str, name: str, pod: Pod | None, context: Any = None) -> None:
        ref = (namespace, name)
        old = self._pods.get(ref)
        if old is None and pod is None:
            return
        before_self = _own_view(old)
        before_remote = self._remote_view(ref)
        if old is not None:
            for port in self._pod_named(old):
                self._named_pods.discard(port, ref)
        if pod is None:
            del self._pods[ref]
            self._pods_in_ns.discard(namespace, ref)
            self._last_identity.pop(ref, None)
        else:
            self._pods[ref] = pod
            self._pods_in_ns.add(namespace, ref)
            for port in self._pod_named(pod):
                self._named_pods.add(port, ref)
        self._update_subjects(ref)
        self._refresh_identity(ref, Cause.POD, context)
        after_remote = self._remote_view(ref)
        if before_remote != after_remote:
            self._mark_port_users(before_remote.named | after_remote.named, Cause.POD, context)
        if before_self != _own_view(pod):
            self._mark(ref, Cause.POD, context)

    def policy_changed(
        self, namespace: str, name: str, policy: NetworkPolicy | None, context: Any = None
    ) -> None:
        ref = (namespace, name)
        old = self._plans.get(ref)
        new = plan_policy(policy) if policy is not None else None
        if old == new:
            if new is not None:
                self._plans[ref] = new  # same meaning; keep the latest uid/resourceVersion
            return
        affected = set(self._subjects.get(ref))
        if old is not None:
            self._release(old)
            del self._plans[ref]
            self._plans_in_ns.discard(namespace, ref)
        if new is not None:
            self._plans[ref] = new
            self._plans_in_ns.add(namespace, ref)
            self._acquire(new)
        for pod_ref in sorted(self._pods_in_ns.get(namespace)):
            self._update_subjects(pod_ref, only=ref)
        affected |= self._subjects.get(ref)
        for pod_ref in affected:
            self._mark(pod_ref, Cause.POLICY, context)
        self._report(ref, new)

    def _acquire(self, plan: PolicyPlan) -> None:
        for selector in plan.selectors():
            self._selectors.acquire(selector, plan.ref, self._live.items())
        for block in plan.blocks():
            self._cidrs.acquire(block, plan.ref)
        for port in plan.egress_port_names():
            self._port_users.add(port, plan.ref)

    def _release(self, plan: PolicyPlan) -> None:
        for selector in plan.selectors():
            self._selectors.release(selector, plan.ref)
        for block in plan.blocks():
            self._cidrs.release(block, plan.ref)
        for port in plan.egress_port_names():
            self._port_users.discard(port, plan.ref)

    def _report(self, ref: PolicyRef, plan: PolicyPlan | None) -> None:
        problems = plan.problems if plan is not None else ()
        if problems == self._reported.get(ref, ()):
            return
        if problems:
            self._reported[ref] = problems
        else:
            self._reported.pop(ref, None)
        if plan is not None:
            self._reports.append(Report(ref[0], ref[1], plan.uid, plan.resource_version, problems))

    def _update_subjects(self, ref: PodRef, only: PolicyRef | None = None) -> None:
        """Which policies select pod `ref` (all in its namespace, or just `only`)."""
        pod = self._pods.get(ref)
        candidates = {only} if only is not None else set(self._plans_in_ns.get(ref[0]))
        candidates |= (
            self._policies_of.get(ref) if only is None else self._policies_of.get(ref) & {only}
        )
        for policy in candidates:
            plan = self._plans.get(policy)
            selects = pod is not None and plan is not None and plan.subject.matches(pod.meta.labels)
            if selects:
                self._subjects.add(policy, ref)
                self._policies_of.add(ref, policy)
            else:
                self._subjects.discard(policy, ref)
                self._policies_of.discard(ref, policy)

    # --- weir-identities ----------------------------------------------------------------------

    def identity_changed(self, key: str, identity: Identity | None, context: Any = None) -> None:
        """A key of weir-identities: `id.<n>` (number -> labels) or `labels.<hash>` (labels ->
        number, the authoritative mapping of a label set)."""
        old = self._identity_keys.pop(key, None)
        if identity is not None:
            self._identity_keys[key] = identity
        if old == identity:
            return
        kind = key.split(".", 1)[0]
        if kind == "id":
            if old is not None:
                self._forget_identity(old, context)
            if identity is not None:
                self._learn_identity(identity, context)
        elif kind == "labels":
            if old is not None:
                labels = label_set(old.labels)
                if self._owner_of.get(labels) == old.id:
                    del self._owner_of[labels]
                self._refresh_pods_with(labels, Cause.IDENTITY, context)
            if identity is not None:
                labels = label_set(identity.labels)
                self._owner_of[labels] = identity.id
                self._refresh_pods_with(labels, Cause.IDENTITY, context)

    def _learn_identity(self, identity: Identity, context: Any) -> None:
        number, labels = identity.id, identity.labels
        self._id_labels[number] = labels
        self._ids_with.add(label_set(labels), number)
        if labels.cidr:
            self._cidr_changed(labels.cidr, number, +1, Cause.IDENTITY, context)
        self._refresh_live(number, Cause.IDENTITY, context)
        self._refresh_pods_with(label_set(labels), Cause.IDENTITY, context)

    def _forget_identity(self, identity: Identity, context: Any) -> None:
        number, labels = identity.id, identity.labels
        if self._id_labels.get(number) == labels:
            del self._id_labels[number]
        self._ids_with.discard(label_set(labels), number)
        if labels.cidr:
            self._cidr_changed(labels.cidr, number, -1, Cause.IDENTITY, context)
        self._refresh_live(number, Cause.IDENTITY, context)
        self._refresh_pods_with(label_set(labels), Cause.IDENTITY, context)

    # --- weir-ipcache -------------------------------------------------------------------------

    def ipcache_changed(self, key: str, entry: IPCacheEntry | None, context: Any = None) -> None:
        old = self._ipcache.pop(key, None)
        if entry is not None:
            self._ipcache[key] = entry
        if old == entry:
            return
        if old is not None:
            self._apply_ipcache(old, -1, context)
        if entry is not None:
            self._apply_ipcache(entry, +1, context)

    def _apply_ipcache(self, entry: IPCacheEntry, sign: int, context: Any) -> None:
        if entry.kind is IPCacheKind.POD:
            ref = (entry.pod_namespace, entry.pod_name)
            held = self._ipcache_of_pod.setdefault(ref, {})
            if sign > 0:
                held[entry.prefix] = entry.identity
                self._ipcache_use[entry.identity] += 1
            else:
                held.pop(entry.prefix, None)
                self._ipcache_use[entry.identity] -= 1
                if self._ipcache_use[entry.identity] <= 0:
                    del self._ipcache_use[entry.identity]
            if not held:
                del self._ipcache_of_pod[ref]
            self._refresh_live(entry.identity, Cause.IPCACHE, context)
            if ref in self._pods:
                self._refresh_identity(ref, Cause.IPCACHE, context)
        elif entry.kind in (IPCacheKind.CIDR, IPCacheKind.WORLD):
            self._cidr_changed(entry.prefix, entry.identity, sign, Cause.IPCACHE, context)
        if entry.cidr_identity:
            self._cidr_changed(entry.prefix, entry.cidr_identity, sign, Cause.IPCACHE, context)
        # NODE entries: node addresses are host / remote-node identities, which no
        # NetworkPolicy peer selects.

    def _cidr_changed(self, prefix: str, identity: int, sign: int, cause: Cause, ctx: Any) -> None:
        try:
            net = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            return
        if not isinstance(net, ipaddress.IPv4Network):
            return  # IPv4-only datapath: IPv6 blocks are reported as unusable, never compiled
        changed = self._cidrs.add(net, identity) if sign > 0 else self._cidrs.remove(net, identity)
        if changed:
            self._mark_policies(self._cidrs.users_covering(net), cause, ctx)

    # --- identities of pods -------------------------------------------------------------------

    def _pod_label_set(self, pod: Pod) -> LabelSet | None:
        ns_labels = self._namespaces.get(pod.meta.namespace)
        if ns_labels is None:
            return None
        return label_set(
            IdentityLabels(
                namespace=pod.meta.namespace,
                pod_labels=security_labels(pod.meta.labels),
                namespace_labels=ns_labels,
            )
        )

    def _resolve(self, ref: PodRef, pod: Pod, labels: LabelSet | None) -> int | None:
        if labels is not None:
            owner = self._owner_of.get(labels)
            if owner is not None:
                return owner
            numbers = self._ids_with.get(labels)
            if numbers:
                return min(numbers)
        # Not (yet) allocated for the current labels: the identity the pod's address has now.
        by_address = self._ipcache_of_pod.get(ref)
        if by_address:
            return min(by_address.values())
        last = self._last_identity.get(ref)
        if last is not None and last[0] == pod.meta.uid:
            return last[1]
        return None

    def _refresh_pods_with(self, labels: LabelSet, cause: Cause, ctx: Any) -> None:
        for ref in sorted(self._pods_with_labels.get(labels)):
            self._refresh_identity(ref, cause, ctx)

    def _refresh_identity(self, ref: PodRef, cause: Cause, ctx: Any) -> None:
        pod = self._pods.get(ref)
        old_labels = self._labels_of_pod.pop(ref, None)
        if old_labels is not None:
            self._pods_with_labels.discard(old_labels, ref)
        new_id: int | None = None
        if pod is not None and not pod.host_network:
            labels = self._pod_label_set(pod)
            if labels is not None:
                self._labels_of_pod[ref] = labels
                self._pods_with_labels.add(labels, ref)
            new_id = self._resolve(ref, pod, labels)
        old_id = self._identity_of.get(ref)
        if new_id == old_id:
            return
        named = self._pod_named(pod) if pod is not None else frozenset()
        if old_id is not None:
            self._pods_of.discard(old_id, ref)
            del self._identity_of[ref]
        if new_id is not None and pod is not None:
            self._pods_of.add(new_id, ref)
            self._identity_of[ref] = new_id
            self._last_identity[ref] = (pod.meta.uid, new_id)
        self._mark(ref, cause, ctx)
        for number in sorted(n for n in (old_id, new_id) if n is not None):
            self._refresh_live(number, cause, ctx)
        # Remote endpoints that resolved this pod's named ports under its old identity.
        self._mark_port_users(named, cause, ctx)

    def _refresh_live(self, number: int, cause: Cause, ctx: Any) -> None:
        """A pod identity is selectable while its labels are known and a pod (or an ipcache
        address) has it."""
        labels = self._id_labels.get(number)
        in_use = number in self._pods_of or self._ipcache_use[number] > 0
        wanted = labels if labels is not None and labels.namespace and in_use else None
        had = self._live.get(number)
        if had == wanted:
            return
        changed: set[PolicyRef] = set()
        if had is not None:
            del self._live[number]
            changed |= self._selectors.identity_off(number)
        if wanted is not None:
            self._live[number] = wanted
            changed |= self._selectors.identity_on(number, wanted)
        self._mark_policies(changed, cause, ctx)

    # --- dirt ---------------------------------------------------------------------------------

    def _mark(self, ref: PodRef, cause: Cause, ctx: Any) -> None:
        # The first cause (and trace) is kept: it is the change that made the endpoint stale.
        self._dirty.setdefault(ref, (cause, ctx))

    def _mark_policies(self, policies: Iterable[PolicyRef], cause: Cause, ctx: Any) -> None:
        for policy in policies:
            for ref in self._subjects.get(policy):
                self._mark(ref, cause, ctx)

    def _mark_port_users(
        self, ports: Iterable[tuple[str, Protocol]], cause: Cause, ctx: Any
    ) -> None:
        for port in ports:
            self._mark_policies(self._port_users.get(port), cause, ctx)

    def _pod_named(self, pod: Pod) -> frozenset[tuple[str, Protocol]]:
        return frozenset() if pod.host_network else named_ports(pod.ports)

    def _remote_view(self, ref: PodRef) -> _RemoteView:
        pod = self._pods.get(ref)
        if pod is None:
            return _NO_REMOTE
        return _RemoteView(self._identity_of.get(ref), self._pod_named(pod), pod.pod_ips)


def _own_view(pod: Pod | None) -> tuple[Any, ...] | None:
    """What of a pod its own endpoint's table depends on."""
    if pod is None:
        return None
    return (
        pod.node_name,
        pod.host_network,
        pod.meta.uid,
        tuple(sorted(pod.meta.labels.items())),
        pod.ports,
    )
