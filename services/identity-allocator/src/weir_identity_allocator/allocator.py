"""Allocating and releasing numeric identities by compare-and-set, with no I/O.

KV weir-identities holds two keys per identity: `id.<n>` (the number's owner: Identity(n,
labels)) and `labels.<hash>` (the label set's number). Both are only ever created, touched or
deleted by compare-and-set, so replicas racing on the same label sets agree. The protocol is
written as generators that yield store operations (`Get`, `Create`, `Update`, `Delete`,
`Recheck`) and receive their results: the service drives them against NATS, the tests against a
fake store that can interleave several of them step by step.

Allocate label set L (hash h):
  1. Get labels.h. If it names n and id.n holds L, adopt n. (A labels key naming a number it
     does not own is corrupt: CAS-delete it and start over.)
  2. Otherwise reserve a number: revive an orphan id.n that already holds L (touch it: CAS
     update with the same value), else create id.n for a fresh candidate n. A conflict means
     someone else holds n: try another candidate.
  3. Create labels.h = n. A conflict means another replica published L first: start over at 1,
     which adopts its number m, and release our id.n (CAS-delete on our own revision; if that
     fails someone revived it, and it is theirs).

Release number n of label set L (garbage collection, once nothing has used it for the grace
period):
  1. CAS-delete labels.h on the revision we saw (if it names n). From now on no one adopts n by
     reading labels.h; a replica that needs L again revives id.n instead (allocate, step 2).
  2. Get id.n (its revision r), then Recheck: wait until our view of weir-k8s has caught up
     with everything written before this moment, and ask whether anything uses L now.
  3. CAS-delete id.n on r.

Why no number is ever bound to two label sets, and no label set to two numbers: id.n and
labels.h are only created when absent (CAS create), so at any moment each has at most one
value. labels.h -> n is only published by a replica that holds id.n at a known revision
(created or touched it an instant earlier) — and id.n is only deleted after labels.h. The only
danger is the release's step 3 deleting id.n while some replica is about to use n. Every such
replica either wrote id.n (created or touched it: a later revision, so the CAS delete on r
fails) or read labels.h -> n before step 1 deleted it, because a pod it saw in weir-k8s needs
L. That pod was written before step 1, so the Recheck — which waits for weir-k8s as of a moment
after step 1 — sees it and the release stops, leaving id.n to be revived. Nothing depends on
timing or on the grace period; the grace period only keeps identities stable across short gaps
(a rollout, a restart).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Generator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from weir import catalog
from weir.identity import CLUSTER_MAX, CLUSTER_MIN, LOCAL_CIDR_FLAG, IdentityId
from weir.models import Identity, IdentityLabels

from .labels import LabelHash

# --- the store's operations and replies -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Get:
    key: str


@dataclass(frozen=True, slots=True)
class Create:
    """Write only if `key` has no live value. Reply: the new revision, or CONFLICT."""

    key: str
    value: Identity


@dataclass(frozen=True, slots=True)
class Update:
    """Write only if `key` is at revision `last`. Reply: the new revision, or CONFLICT."""

    key: str
    value: Identity
    last: int


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete only if `key` is at revision `last`. Reply: the new revision, or CONFLICT."""

    key: str
    last: int


@dataclass(frozen=True, slots=True)
class Recheck:
    """Wait until the view of weir-k8s includes everything written before now; reply whether
    identity `number` is still unused."""

    number: IdentityId


Op = Get | Create | Update | Delete | Recheck


@dataclass(frozen=True, slots=True)
class Stored:
    """A Get's reply for a live key: `value` is None when it cannot be decoded."""

    value: Identity | None
    revision: int


class _Conflict:
    def __repr__(self) -> str:
        return "CONFLICT"


CONFLICT = _Conflict()
Reply = Stored | None | int | bool | _Conflict


class ProtocolError(Exception):
    """The store replied something the operation cannot produce (a driver bug)."""


def _get(key: str) -> Generator[Op, Reply, Stored | None]:
    reply = yield Get(key)
    if reply is None or isinstance(reply, Stored):
        return reply
    raise ProtocolError(f"Get({key}) replied {reply!r}")


def _write(op: Create | Update | Delete) -> Generator[Op, Reply, int | None]:
    """The new revision, or None when the compare-and-set lost."""
    reply = yield op
    if reply is CONFLICT:
        return None
    if isinstance(reply, int) and not isinstance(reply, bool):
        return reply
    raise ProtocolError(f"{op!r} replied {reply!r}")


def _recheck(number: IdentityId) -> Generator[Op, Reply, bool]:
    reply = yield Recheck(number)
    if isinstance(reply, bool):
        return reply
    raise ProtocolError(f"Recheck({number}) replied {reply!r}")


# --- number spaces and candidates -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NumberSpace:
    """The numbers one kind of identity is drawn from (inclusive)."""

    name: str
    low: int
    high: int

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and self.low <= number <= self.high


def cluster_space(high: int = CLUSTER_MAX) -> NumberSpace:
    if not CLUSTER_MIN <= high <= CLUSTER_MAX:
        raise ValueError(f"the highest cluster identity must be in {CLUSTER_MIN}..{CLUSTER_MAX}")
    return NumberSpace("cluster", CLUSTER_MIN, high)


CIDR_SPACE = NumberSpace("cidr", LOCAL_CIDR_FLAG | 1, LOCAL_CIDR_FLAG | (LOCAL_CIDR_FLAG - 1))


class Exhausted(Exception):
    """Every number of a space is taken."""


def choose_candidate(space: NumberSpace, taken: Collection[int], rng: random.Random) -> int:
    """A number of `space` not in `taken`: the first free one at or after a random start.

    A random start, not the lowest free number: replicas allocating at the same moment would
    otherwise all try the same number and all but one would conflict, every time.
    """
    start = rng.randint(space.low, space.high)
    for number in itertools.chain(range(start, space.high + 1), range(space.low, start)):
        if number not in taken:
            return number
    raise Exhausted(f"no free number in the {space.name} space {space.low}..{space.high}")


# --- allocation --------------------------------------------------------------------------------


class How(StrEnum):
    ADOPTED = "adopted"  # the label set already had this number
    CREATED = "created"  # a fresh number, published by us
    REVIVED = "revived"  # an orphaned id.<n> holding these labels, published again by us


@dataclass(frozen=True, slots=True)
class Allocation:
    number: IdentityId
    how: How
    conflicts: int  # compare-and-set writes that lost on the way


class AllocationFailed(Exception):
    """Too many lost races in a row (retried on the next pass)."""


def allocate(
    labels: IdentityLabels,
    label_hash: LabelHash,
    *,
    space: NumberSpace,
    rng: random.Random,
    taken: Collection[int] = (),
    orphans: Sequence[tuple[int, int]] = (),
    max_attempts: int = 32,
) -> Generator[Op, Reply, Allocation]:
    """The number of `labels`, allocating one if it has none. See the module docstring.

    `taken`: numbers known to be in use (skipped as candidates; the CAS decides anyway).
    `orphans`: (number, revision) of id keys known to hold `labels` without a labels key.
    """
    labels_key = catalog.identity_labels_key(label_hash)
    conflicts = 0
    tried: set[int] = set()
    revivable = list(orphans)
    mine: tuple[int, int] | None = None  # (number, revision) of the id key we hold
    revived = False
    for _ in range(max_attempts):
        # 1. Does the label set have a number already?
        current = yield from _get(labels_key)
        if current is not None:
            owner = current.value
            if owner is not None and owner.labels == labels:
                held = yield from _get(catalog.identity_id_key(owner.id))
                if _holds(held, owner.id, labels):
                    if mine is not None and mine[0] != owner.id:
                        # We lost the race: our reservation is nobody's. CAS, so that a replica
                        # that revived it in the meantime keeps it.
                        freed = yield from _write(Delete(catalog.identity_id_key(mine[0]), mine[1]))
                        conflicts += freed is None
                    return Allocation(IdentityId(owner.id), How.ADOPTED, conflicts)
            # A labels key naming a number that does not hold these labels, or garbage: remove
            # it (CAS: a value written meanwhile stays) and allocate afresh.
            removed = yield from _write(Delete(labels_key, current.revision))
            conflicts += removed is None
            continue

        # 2. Hold an id key: an orphan that already has these labels, else a fresh number.
        if mine is None and revivable:
            mine, lost = yield from _revive(labels, revivable, tried)
            conflicts += lost
            revived = mine is not None
        if mine is None:
            mine, lost = yield from _reserve(labels, space, rng, taken, tried)
            conflicts += lost
            if mine is None:
                continue

        # 3. Publish the label set's number.
        published = yield from _write(Create(labels_key, Identity(id=mine[0], labels=labels)))
        if published is not None:
            return Allocation(
                IdentityId(mine[0]), How.REVIVED if revived else How.CREATED, conflicts
            )
        conflicts += 1  # another replica published first: step 1 adopts its number
    raise AllocationFailed(f"labels {label_hash}: no number after {max_attempts} attempts")


def _holds(stored: Stored | None, number: int, labels: IdentityLabels) -> bool:
    return (
        stored is not None
        and stored.value is not None
        and stored.value.id == number
        and stored.value.labels == labels
    )


def _revive(
    labels: IdentityLabels, orphans: list[tuple[int, int]], tried: set[int]
) -> Generator[Op, Reply, tuple[tuple[int, int] | None, int]]:
    """Touch an orphan id key holding `labels` (CAS update, same value): a release that read
    the old revision then fails its delete. ((number, revision) or None, conflicts)."""
    lost = 0
    while orphans:
        number, revision = orphans.pop(0)
        tried.add(number)
        key = catalog.identity_id_key(number)
        for _ in range(3):
            touched = yield from _write(Update(key, Identity(id=number, labels=labels), revision))
            if touched is not None:
                return (number, touched), lost
            lost += 1
            now = yield from _get(key)
            if now is None or not _holds(now, number, labels):
                break  # released, or someone else's now
            revision = now.revision  # another replica touched it too: touch after it
    return None, lost


def _reserve(
    labels: IdentityLabels,
    space: NumberSpace,
    rng: random.Random,
    taken: Collection[int],
    tried: set[int],
) -> Generator[Op, Reply, tuple[tuple[int, int] | None, int]]:
    """Create the id key of a fresh number. ((number, revision) or None, conflicts)."""
    lost = 0
    for _ in range(64):
        number = choose_candidate(space, _Union(taken, tried), rng)
        key = catalog.identity_id_key(number)
        created = yield from _write(Create(key, Identity(id=number, labels=labels)))
        if created is not None:
            return (number, created), lost
        lost += 1  # someone holds it: another candidate
        tried.add(number)
    return None, lost


class _Union(Collection[int]):
    """Two collections seen as one for membership tests, without copying either."""

    def __init__(self, a: Collection[int], b: Collection[int]) -> None:
        self._a, self._b = a, b

    def __contains__(self, x: object) -> bool:
        return x in self._a or x in self._b

    def __len__(self) -> int:
        return len(self._a) + len(self._b)

    def __iter__(self) -> Iterator[int]:
        yield from self._a
        yield from self._b


# --- release -----------------------------------------------------------------------------------


class Outcome(StrEnum):
    RELEASED = "released"
    GONE = "gone"  # nothing left to release
    IN_USE = "in_use"  # the recheck found a user
    CHANGED = "changed"  # a key moved on under us (a CAS lost): someone is using it


@dataclass(frozen=True, slots=True)
class Release:
    number: IdentityId
    outcome: Outcome


def release(
    number: IdentityId,
    labels: IdentityLabels,
    label_hash: LabelHash,
    *,
    labels_revision: int | None,
) -> Generator[Op, Reply, Release]:
    """Give `number` back. `labels_revision`: the revision of labels.<hash> as seen naming
    `number`, or None when the labels key does not name it (an orphan id key)."""
    if labels_revision is not None:
        deleted = yield from _write(
            Delete(catalog.identity_labels_key(label_hash), labels_revision)
        )
        if deleted is None:
            return Release(number, Outcome.CHANGED)
    id_key = catalog.identity_id_key(number)
    held = yield from _get(id_key)
    if held is None:
        return Release(number, Outcome.GONE)
    if not _holds(held, number, labels):
        return Release(number, Outcome.CHANGED)
    if not (yield from _recheck(number)):
        return Release(number, Outcome.IN_USE)
    deleted = yield from _write(Delete(id_key, held.revision))
    return Release(number, Outcome.RELEASED if deleted is not None else Outcome.CHANGED)
