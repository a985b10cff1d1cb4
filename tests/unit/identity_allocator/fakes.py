"""A compare-and-set store that behaves like a JetStream KV bucket, and a scheduler that runs
several allocation protocols against it one operation at a time, in every possible order."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from weir import catalog
from weir.labels import LabelSelector
from weir.models import (
    Identity,
    IdentityLabels,
    IPBlock,
    Meta,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    PolicyPeer,
    PolicyRule,
    PolicyType,
)
from weir_identity_allocator.allocator import (
    CONFLICT,
    Create,
    Delete,
    Get,
    Op,
    Recheck,
    Reply,
    Stored,
    Update,
)
from weir_identity_allocator.labels import LabelHash, label_hash


@dataclass
class FakeCas:
    """Keys with revisions; a delete leaves a tombstone revision (as a KV delete marker does).

    `recheck(number)` answers Recheck; `before(op)` runs before every operation (to inject
    another replica's write at exactly that step)."""

    recheck: Callable[[int], bool] = lambda number: True
    before: Callable[[Op], None] = lambda op: None
    values: dict[str, Identity] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    log: list[Op] = field(default_factory=list)

    def apply(self, op: Op) -> Reply:
        self.before(op)
        self.log.append(op)
        if isinstance(op, Recheck):
            return self.recheck(op.number)
        if isinstance(op, Get):
            if op.key not in self.values:
                return None
            return Stored(self.values[op.key], self.revisions[op.key])
        current = self.revisions.get(op.key, 0)
        if isinstance(op, Create):
            if op.key in self.values:
                return CONFLICT
            return self._write(op.key, op.value)
        assert isinstance(op, Update | Delete)
        if current != op.last:
            return CONFLICT
        return self._write(op.key, op.value if isinstance(op, Update) else None)

    def _write(self, key: str, value: Identity | None) -> int:
        self.seq += 1
        self.revisions[key] = self.seq
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value
        return self.seq

    # --- helpers for tests ------------------------------------------------------------------

    def put(self, key: str, value: Identity) -> int:
        return self._write(key, value)

    def seed(self, number: int, labels: IdentityLabels, *, publish: bool = True) -> None:
        self.put(catalog.identity_id_key(number), Identity(id=number, labels=labels))
        if publish:
            self.put(
                catalog.identity_labels_key(label_hash(labels)), Identity(id=number, labels=labels)
            )

    def number_of(self, labels: IdentityLabels) -> int | None:
        held = self.values.get(catalog.identity_labels_key(label_hash(labels)))
        return None if held is None else held.id

    def holds(self, number: int, labels: IdentityLabels) -> bool:
        return self.values.get(catalog.identity_id_key(number)) == Identity(
            id=number, labels=labels
        )

    def check_invariants(self) -> None:
        """No number bound to two label sets; a labels key names a number that holds it."""
        owners: dict[int, LabelHash] = {}
        for key, value in self.values.items():
            if key.startswith("labels."):
                h = LabelHash(key.split(".", 1)[1])
                assert value.id not in owners, f"{value.id} named by two label sets"
                owners[value.id] = h
                assert self.holds(value.id, value.labels), (
                    f"{key} names {value.id}, whose id key holds "
                    f"{self.values.get(catalog.identity_id_key(value.id))}"
                )
            else:
                assert key == catalog.identity_id_key(value.id)


def run(steps: Generator[Op, Reply, Any], store: FakeCas) -> Any:
    reply: Reply = None
    while True:
        try:
            op = steps.send(reply)
        except StopIteration as done:
            return done.value
        reply = store.apply(op)


Actor = Callable[[FakeCas], Generator[Op, Reply, Any]]


@dataclass
class Outcome:
    schedule: tuple[int, ...]
    results: list[Any]
    store: FakeCas


def interleavings(
    actors: list[Actor],
    store_factory: Callable[[], FakeCas],
    *,
    check: Callable[[FakeCas], None] = FakeCas.check_invariants,
    limit: int = 200_000,
) -> Iterator[Outcome]:
    """Run `actors` to completion in every order of their operations (depth first), checking
    `check` after every operation. Each schedule replays from a fresh store."""
    explored = 0
    stack: list[tuple[int, ...]] = [()]
    while stack:
        prefix = stack.pop()
        outcome, runnable = _replay(actors, store_factory, prefix, check)
        if runnable is None:
            explored += 1
            assert explored <= limit, "too many interleavings: shrink the scenario"
            yield outcome
            continue
        stack.extend((*prefix, i) for i in reversed(runnable))


def _replay(
    actors: list[Actor],
    store_factory: Callable[[], FakeCas],
    prefix: tuple[int, ...],
    check: Callable[[FakeCas], None],
) -> tuple[Outcome, list[int] | None]:
    store = store_factory()
    gens = [a(store) for a in actors]
    pending: list[Op | None] = []
    results: list[Any] = [None] * len(gens)
    done = [False] * len(gens)
    for i, g in enumerate(gens):
        try:
            pending.append(next(g))
        except StopIteration as stop:
            pending.append(None)
            results[i], done[i] = stop.value, True
    for i in prefix:
        op = pending[i]
        assert op is not None
        reply = store.apply(op)
        check(store)
        try:
            pending[i] = gens[i].send(reply)
        except StopIteration as stop:
            pending[i] = None
            results[i], done[i] = stop.value, True
    runnable = [i for i in range(len(gens)) if not done[i]]
    return Outcome(prefix, results, store), (runnable or None)


# --- model objects ----------------------------------------------------------------------------

_uids = itertools.count()


def meta(name: str, namespace: str = "", labels: dict[str, str] | None = None) -> Meta:
    return Meta(
        name=name,
        namespace=namespace,
        uid=f"uid-{next(_uids)}",
        resource_version="1",
        labels=labels or {},
    )


def namespace(name: str, **labels: str) -> Namespace:
    return Namespace(meta=meta(name, labels={"kubernetes.io/metadata.name": name, **labels}))


def pod(
    ns: str,
    name: str,
    labels: dict[str, str] | None = None,
    *,
    ips: tuple[str, ...] = (),
    node: str = "node-1",
    host_network: bool = False,
    phase: str = "Running",
    terminating: bool = False,
) -> Pod:
    return Pod(
        meta=meta(name, ns, labels),
        node_name=node,
        host_network=host_network,
        phase=phase,
        pod_ips=ips,
        host_ip="172.18.0.2",
        ready=True,
        terminating=terminating,
        ports=(),
    )


def node(name: str, *ips: str) -> Node:
    return Node(
        meta=meta(name),
        internal_ips=ips,
        external_ips=(),
        pod_cidrs=(),
        taints=(),
        ready=True,
        unschedulable=False,
    )


def cidr_policy(ns: str, name: str, *blocks: tuple[str, tuple[str, ...]]) -> NetworkPolicy:
    """A policy whose egress allows each (cidr, except) block."""
    return NetworkPolicy(
        meta=meta(name, ns),
        generation=1,
        pod_selector=LabelSelector(),
        policy_types=(PolicyType.EGRESS,),
        egress=(
            PolicyRule(
                peers=tuple(PolicyPeer(ip_block=IPBlock(cidr=c, except_=e)) for c, e in blocks)
            ),
        ),
    )
