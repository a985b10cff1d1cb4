"""The ipcache: which identity every address has, planned from weir-k8s and the identities.

Entries (key = prefix; the datapath matches the longest prefix):
  - every pod IP (`/32`, `/128`) -> its pod's identity (kind pod); hostNetwork pods have none:
    their address is their node's;
  - every node InternalIP -> reserved remote-node (kind node); node-loader maps its own node's
    addresses to host;
  - every policy CIDR with an identity -> that identity (kind cidr);
  - `0.0.0.0/0` -> reserved world (kind world). (A policy's `::/0` is world too, but gets no
    entry: the datapath is IPv4-only.)
When two claim the same prefix, node beats pod beats cidr beats world (a /32 policy CIDR naming
a pod is that pod); between two pods, a running one beats a terminating one (its IP has been
reused), then the first key wins — every replica plans the same. A policy CIDR that loses to a
pod or node is not lost: the winner carries its identity as `cidr_identity`, because ipBlock
rules written for that CIDR must still match the address.

`Mirror` is what the bucket holds, from the watch; `diff` gives the writes that make it equal
the plan, so nothing already right is written again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from weir import catalog
from weir.identity import Reserved
from weir.models import IPCacheEntry, IPCacheKind, Pod

from . import labels as lb
from .core import K8sView, Needs, Problem
from .labels import LabelHash

_RANK = {IPCacheKind.NODE: 3, IPCacheKind.POD: 2, IPCacheKind.CIDR: 1, IPCacheKind.WORLD: 0}


@dataclass(frozen=True, slots=True)
class Desired:
    """An entry, and the weir-k8s keys whose changes it follows (for the trace context)."""

    entry: IPCacheEntry
    causes: tuple[str, ...] = ()
    terminating: bool = False  # a pod being deleted: loses an address to a running pod


@dataclass(slots=True)
class Plan:
    entries: dict[str, Desired]
    problems: list[Problem]


def plan(view: K8sView, needs: Needs, numbers: Mapping[LabelHash, int]) -> Plan:
    """Every ipcache entry that should exist, given each label set's number (`numbers`; a set
    without one yet gets no entries, and its users are planned again once it has one)."""
    out = Plan({}, [])

    def offer(d: Desired, owner: str) -> None:
        key = catalog.ipcache_key(d.entry.prefix)
        held = out.entries.get(key)
        if held is None or _beats(d, held):
            out.entries[key] = d
            loser = held
        else:
            loser = d
        if loser is not None:
            winner = out.entries[key]
            carried = _cidr_of(loser.entry)
            if carried and not _cidr_of(winner.entry):
                out.entries[key] = replace(
                    winner,
                    entry=replace(winner.entry, cidr_identity=carried),
                    causes=tuple(dict.fromkeys(winner.causes + loser.causes)),
                )
        if held is not None and held.entry.kind == d.entry.kind:
            who = owner if loser is d else _owner(held)
            out.problems.append(
                Problem(who, "address-conflict", f"{d.entry.prefix} is claimed twice")
            )

    for prefix in lb.WORLD_ENTRIES:
        offer(
            Desired(IPCacheEntry(prefix=prefix, identity=Reserved.WORLD, kind=IPCacheKind.WORLD)),
            "",
        )
    for prefix, h in sorted(needs.cidrs.items()):
        number = numbers.get(h)
        if number is not None:
            entry = IPCacheEntry(prefix=prefix, identity=number, kind=IPCacheKind.CIDR)
            offer(Desired(entry, tuple(needs.users.get(h, ()))), prefix)
    for key, node in sorted(view.nodes.items()):
        for ip in dict.fromkeys(node.internal_ips):
            try:
                prefix = lb.host_prefix(ip)
            except lb.BadPrefix as e:
                out.problems.append(Problem(key, "bad-ip", f"InternalIP {e}"))
                continue
            entry = IPCacheEntry(
                prefix=prefix,
                identity=Reserved.REMOTE_NODE,
                kind=IPCacheKind.NODE,
                node=node.meta.name,
            )
            offer(Desired(entry, (key,)), key)
    for key, h in sorted(needs.pods.items()):
        number = numbers.get(h)
        if number is None:
            continue
        pod = view.pods[key]
        for ip in dict.fromkeys(pod.pod_ips):
            try:
                prefix = lb.host_prefix(ip)
            except lb.BadPrefix as e:
                out.problems.append(Problem(key, "bad-ip", f"podIP {e}"))
                continue
            offer(_pod_entry(key, pod, prefix, number), key)
    return out


def _cidr_of(entry: IPCacheEntry) -> int:
    """The policy-CIDR identity an entry stands for, itself or carried; 0 when none."""
    return entry.identity if entry.kind is IPCacheKind.CIDR else entry.cidr_identity


def _pod_entry(key: str, pod: Pod, prefix: str, number: int) -> Desired:
    entry = IPCacheEntry(
        prefix=prefix,
        identity=number,
        kind=IPCacheKind.POD,
        pod_namespace=pod.meta.namespace,
        pod_name=pod.meta.name,
        node=pod.node_name,
    )
    # The namespace is a cause too: its labels are part of the pod's identity.
    return Desired(entry, (key, f"namespace.{pod.meta.namespace}"), terminating=pod.terminating)


def _beats(new: Desired, held: Desired) -> bool:
    a, b = _RANK[new.entry.kind], _RANK[held.entry.kind]
    if a != b:
        return a > b
    # Same kind: only pods can collide (prefixes of one kind are unique otherwise). A running
    # pod beats a terminating one; otherwise the one offered first (the smaller key) stays.
    return held.terminating and not new.terminating


def _owner(d: Desired) -> str:
    return d.causes[0] if d.causes else d.entry.prefix


class _Unknown:
    """A key whose content is unknown (a write failed): it differs from every entry."""


_UNKNOWN = _Unknown()


@dataclass(frozen=True, slots=True)
class Change:
    """Put `entry` at `key`, or delete `key` when `entry` is None. `previous` is what the
    bucket held (to name the cause of a delete)."""

    key: str
    entry: IPCacheEntry | None
    previous: IPCacheEntry | None


class Mirror:
    """What KV weir-ipcache holds, key by key (None: a value that cannot be decoded)."""

    def __init__(self) -> None:
        self._held: dict[str, IPCacheEntry | _Unknown | None] = {}

    def __len__(self) -> int:
        return len(self._held)

    def observe(self, key: str, entry: IPCacheEntry | None, *, live: bool) -> bool:
        """A value the watch delivered. True when it differs from what was believed."""
        had = key in self._held
        before = self._held.get(key)
        if not live:
            self._held.pop(key, None)
            return had
        self._held[key] = entry
        return not had or isinstance(before, _Unknown) or before != entry

    def diff(self, desired: Mapping[str, IPCacheEntry]) -> list[Change]:
        """The writes that make the bucket hold exactly `desired`."""
        changes = []
        for key, entry in desired.items():
            held = self._held.get(key, _UNKNOWN)
            if held != entry or isinstance(held, _Unknown):
                changes.append(Change(key, entry, _known(held)))
        for key, held in self._held.items():
            if key not in desired:
                changes.append(Change(key, None, _known(held)))
        return changes

    def sent(self, change: Change) -> None:
        """Believe the write landed (the watch will confirm or correct it)."""
        if change.entry is None:
            self._held.pop(change.key, None)
        else:
            self._held[change.key] = change.entry

    def forget(self, key: str) -> None:
        """A write failed: what the bucket holds at `key` is unknown until the watch says."""
        self._held[key] = _UNKNOWN

    def count(self) -> dict[IPCacheKind, int]:
        out = dict.fromkeys(IPCacheKind, 0)
        for held in self._held.values():
            if isinstance(held, IPCacheEntry):
                out[held.kind] += 1
        return out

    def identities(self) -> dict[int, int]:
        """Identity -> how many entries point at it."""
        out: dict[int, int] = {}
        for held in self._held.values():
            if isinstance(held, IPCacheEntry):
                out[held.identity] = out.get(held.identity, 0) + 1
        return out


def _known(held: IPCacheEntry | _Unknown | None) -> IPCacheEntry | None:
    return held if isinstance(held, IPCacheEntry) else None
