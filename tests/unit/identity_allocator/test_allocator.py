"""The allocation protocol against a fake compare-and-set store: each step, each lost race, and
every interleaving of two replicas (and of a release racing a new user)."""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import pytest
from weir import catalog
from weir.identity import CLUSTER_MIN, LOCAL_CIDR_FLAG, IdentityId
from weir.models import Identity, IdentityLabels
from weir_identity_allocator.allocator import (
    CIDR_SPACE,
    Allocation,
    AllocationFailed,
    Create,
    Delete,
    Exhausted,
    Get,
    How,
    NumberSpace,
    Op,
    Outcome,
    Recheck,
    Release,
    Reply,
    allocate,
    choose_candidate,
    cluster_space,
    release,
)
from weir_identity_allocator.labels import cidr_labels, label_hash

from tests.unit.identity_allocator.fakes import FakeCas, interleavings, run

WEB = IdentityLabels(namespace="x", pod_labels={"app": "web"}, namespace_labels={"team": "a"})
DB = IdentityLabels(namespace="x", pod_labels={"app": "db"}, namespace_labels={"team": "a"})
H = label_hash(WEB)
LABELS_KEY = catalog.identity_labels_key(H)


class FixedStarts(random.Random):
    """An rng whose randint returns the given values in turn (then keeps the last)."""

    def __init__(self, *starts: int) -> None:
        super().__init__(0)
        self.starts = list(starts)

    def randint(self, a: int, b: int) -> int:
        value = self.starts.pop(0) if len(self.starts) > 1 else self.starts[0]
        assert a <= value <= b
        return value


def alloc(
    store: FakeCas,
    labels: IdentityLabels = WEB,
    *,
    rng: random.Random | None = None,
    space: NumberSpace | None = None,
    orphans: list[tuple[int, int]] | None = None,
) -> Allocation:
    steps = allocate(
        labels,
        label_hash(labels),
        space=space or cluster_space(),
        rng=rng or random.Random(1),
        taken={int(k.split(".")[1]) for k in store.values if k.startswith("id.")},
        orphans=orphans or [],
    )
    result: Allocation = run(steps, store)
    return result


def kinds(store: FakeCas) -> list[str]:
    return [f"{type(op).__name__} {getattr(op, 'key', '')}".split(".")[0] for op in store.log]


# --- candidates ---------------------------------------------------------------------------------


def test_a_candidate_is_the_first_free_number_from_a_random_start_wrapping_around() -> None:
    space = NumberSpace("t", 10, 14)
    assert choose_candidate(space, {12}, FixedStarts(12)) == 13
    assert choose_candidate(space, {12, 13, 14}, FixedStarts(13)) == 10
    with pytest.raises(Exhausted):
        choose_candidate(space, set(range(10, 15)), FixedStarts(11))


def test_candidates_are_spread_over_the_space_so_replicas_rarely_collide() -> None:
    a, b = random.Random(1), random.Random(2)
    space = cluster_space()
    picks_a = [choose_candidate(space, (), a) for _ in range(200)]
    picks_b = [choose_candidate(space, (), b) for _ in range(200)]
    assert len(set(picks_a)) == 200  # not "the lowest free number" every time
    assert not set(picks_a) & set(picks_b)
    assert all(CLUSTER_MIN <= n <= space.high for n in picks_a)


def test_number_spaces() -> None:
    assert cluster_space().low == CLUSTER_MIN == 256
    assert cluster_space(1000).high == 1000
    with pytest.raises(ValueError):
        cluster_space(100)
    assert CIDR_SPACE.low == LOCAL_CIDR_FLAG | 1 and CIDR_SPACE.high < 1 << 25
    assert (1 << 24) + 5 in CIDR_SPACE and 5 not in CIDR_SPACE


# --- allocation, step by step --------------------------------------------------------------------


def test_a_new_label_set_gets_its_id_key_then_its_labels_key() -> None:
    store = FakeCas()
    result = alloc(store, rng=FixedStarts(300))
    assert result == Allocation(IdentityId(300), How.CREATED, 0)
    assert kinds(store) == ["Get labels", "Create id", "Create labels"]
    assert store.number_of(WEB) == 300 and store.holds(300, WEB)
    store.check_invariants()


def test_a_known_label_set_is_adopted_without_writing() -> None:
    store = FakeCas()
    store.seed(777, WEB)
    assert alloc(store) == Allocation(IdentityId(777), How.ADOPTED, 0)
    assert kinds(store) == ["Get labels", "Get id"]


def test_cidr_identities_come_from_their_own_space() -> None:
    store = FakeCas()
    labels = cidr_labels("10.0.0.0/8")
    result = alloc(store, labels, space=CIDR_SPACE)
    assert result.number & LOCAL_CIDR_FLAG and store.number_of(labels) == result.number


def test_a_taken_candidate_is_skipped_for_another() -> None:
    store = FakeCas()

    def other_replica_takes_it(op: Op) -> None:
        if isinstance(op, Create) and op.key == "id.300" and "id.300" not in store.values:
            store.seed(300, DB, publish=False)

    store.before = other_replica_takes_it
    result = alloc(store, rng=FixedStarts(300, 500))
    assert result == Allocation(IdentityId(500), How.CREATED, 1)
    assert store.holds(300, DB) and store.holds(500, WEB)
    store.check_invariants()


def test_losing_the_labels_key_adopts_the_winner_and_frees_our_number() -> None:
    store = FakeCas()

    def other_replica_publishes_first(op: Op) -> None:
        if isinstance(op, Create) and op.key == LABELS_KEY and LABELS_KEY not in store.values:
            store.seed(900, WEB)

    store.before = other_replica_publishes_first
    result = alloc(store, rng=FixedStarts(300))
    assert result == Allocation(IdentityId(900), How.ADOPTED, 1)
    assert "id.300" not in store.values  # released by CAS on our own revision
    assert store.number_of(WEB) == 900
    store.check_invariants()


def test_a_reservation_revived_by_another_replica_is_kept_not_freed() -> None:
    store = FakeCas()

    def other_replica_revives_ours(op: Op) -> None:
        if isinstance(op, Create) and op.key == LABELS_KEY and LABELS_KEY not in store.values:
            store.seed(300, WEB)  # touched id.300 and published it

    store.before = other_replica_revives_ours
    result = alloc(store, rng=FixedStarts(300))
    assert result.number == 300
    assert store.holds(300, WEB)


def test_our_loser_number_revived_meanwhile_is_left_to_its_reviver() -> None:
    store = FakeCas()

    def race(op: Op) -> None:
        if isinstance(op, Create) and op.key == LABELS_KEY and LABELS_KEY not in store.values:
            store.seed(900, WEB)  # another replica wins the label set ...
        if isinstance(op, Delete) and op.key == "id.300" and store.revisions["id.300"] == op.last:
            store.put("id.300", Identity(id=300, labels=WEB))  # ... and a third touches ours

    store.before = race
    result = alloc(store, rng=FixedStarts(300))
    assert result.number == 900 and result.conflicts == 2
    assert store.holds(300, WEB)  # an orphan for garbage collection, never a duplicate


def test_a_labels_key_naming_a_number_that_does_not_hold_it_is_replaced() -> None:
    store = FakeCas()
    store.seed(400, DB, publish=False)
    store.put(LABELS_KEY, Identity(id=400, labels=WEB))  # corrupt: 400 holds DB
    result = alloc(store, rng=FixedStarts(401))
    assert result == Allocation(IdentityId(401), How.CREATED, 0)
    assert store.holds(400, DB) and store.number_of(WEB) == 401
    store.check_invariants()


def test_an_orphaned_id_key_with_these_labels_is_revived_not_duplicated() -> None:
    store = FakeCas()
    store.seed(555, WEB, publish=False)
    result = alloc(store, orphans=[(555, store.revisions["id.555"])])
    assert result == Allocation(IdentityId(555), How.REVIVED, 0)
    assert kinds(store) == ["Get labels", "Update id", "Create labels"]
    store.check_invariants()


def test_an_orphan_released_meanwhile_falls_back_to_a_fresh_number() -> None:
    store = FakeCas()
    store.seed(555, WEB, publish=False)
    rev = store.revisions["id.555"]
    store.apply(Delete("id.555", rev))  # released after the index saw it
    store.log.clear()
    result = alloc(store, rng=FixedStarts(600), orphans=[(555, rev)])
    assert result == Allocation(IdentityId(600), How.CREATED, 1)
    assert kinds(store) == ["Get labels", "Update id", "Get id", "Create id", "Create labels"]


def test_endless_lost_races_give_up_for_this_pass() -> None:
    store = FakeCas()

    def always_first(op: Op) -> None:  # every label key we try to publish is gone again
        if isinstance(op, Create) and op.key == LABELS_KEY:
            store.put(LABELS_KEY, Identity(id=1, labels=DB))

    store.before = always_first
    with pytest.raises(AllocationFailed):
        alloc(store)


# --- release ------------------------------------------------------------------------------


def rel(store: FakeCas, number: int, labels: IdentityLabels = WEB) -> Release:
    key = catalog.identity_labels_key(label_hash(labels))
    named = store.values.get(key)
    revision = store.revisions[key] if named is not None and named.id == number else None
    steps = release(IdentityId(number), labels, label_hash(labels), labels_revision=revision)
    result: Release = run(steps, store)
    return result


def test_a_release_deletes_the_labels_key_then_rechecks_then_the_id_key() -> None:
    store = FakeCas()
    store.seed(700, WEB)
    store.log.clear()
    assert rel(store, 700).outcome is Outcome.RELEASED
    assert [type(op) for op in store.log] == [Delete, Get, Recheck, Delete]
    assert store.values == {}


def test_a_release_stops_when_the_recheck_finds_a_user() -> None:
    store = FakeCas(recheck=lambda n: False)
    store.seed(700, WEB)
    assert rel(store, 700).outcome is Outcome.IN_USE
    assert store.holds(700, WEB) and store.number_of(WEB) is None  # revivable
    store.check_invariants()


def test_a_release_stops_when_the_id_key_was_touched() -> None:
    store = FakeCas()
    store.seed(700, WEB)

    def revive(op: Op) -> None:
        if isinstance(op, Recheck):
            store.put("id.700", Identity(id=700, labels=WEB))

    store.before = revive
    assert rel(store, 700).outcome is Outcome.CHANGED
    assert store.holds(700, WEB)


def test_a_release_stops_when_the_labels_key_moved_on() -> None:
    store = FakeCas()
    store.seed(700, WEB)
    rev = store.revisions[LABELS_KEY]
    store.put(LABELS_KEY, Identity(id=700, labels=WEB))  # republished since we looked
    steps = release(IdentityId(700), WEB, H, labels_revision=rev)
    assert run(steps, store).outcome is Outcome.CHANGED
    assert store.number_of(WEB) == 700


def test_releasing_an_orphan_leaves_the_label_sets_real_number_alone() -> None:
    store = FakeCas()
    store.seed(800, WEB)
    store.seed(801, WEB, publish=False)  # the leftover of a lost race
    assert rel(store, 801).outcome is Outcome.RELEASED
    assert store.number_of(WEB) == 800 and "id.801" not in store.values
    assert rel(store, 801).outcome is Outcome.GONE


# --- every interleaving -------------------------------------------------------------------


def allocator_actor(labels: IdentityLabels, *starts: int, know_orphans: bool = True) -> Any:
    """A replica allocating `labels`; its candidates start at `starts` (a fresh rng per run)."""

    def actor(store: FakeCas) -> Generator[Op, Reply, Allocation]:
        rng = FixedStarts(*starts)
        h = label_hash(labels)
        orphans: list[tuple[int, int]] = []
        if know_orphans and catalog.identity_labels_key(h) not in store.values:
            orphans = [
                (v.id, store.revisions[k])
                for k, v in sorted(store.values.items())
                if k.startswith("id.") and v.labels == labels
            ]
        taken = {v.id for k, v in store.values.items() if k.startswith("id.")}
        result: Allocation = yield from allocate(
            labels, h, space=cluster_space(), rng=rng, taken=taken, orphans=orphans
        )
        return result

    return actor


def test_two_replicas_allocating_one_label_set_agree_in_every_interleaving() -> None:
    seen_conflicts = set()
    count = 0
    for out in interleavings(
        [allocator_actor(WEB, 300), allocator_actor(WEB, 400)],
        FakeCas,
    ):
        count += 1
        a, b = out.results
        assert a.number == b.number, out.schedule
        ids = [k for k in out.store.values if k.startswith("id.")]
        assert ids == [f"id.{a.number}"], (out.schedule, ids)  # the loser freed its number
        seen_conflicts.add(a.conflicts + b.conflicts)
    assert count >= 20 and max(seen_conflicts) >= 1


def test_two_replicas_trying_the_same_candidate_agree_in_every_interleaving() -> None:
    for out in interleavings(
        [allocator_actor(WEB, 300, 301), allocator_actor(WEB, 300, 302)],
        FakeCas,
    ):
        a, b = out.results
        assert a.number == b.number
        assert out.store.number_of(WEB) == a.number and out.store.holds(a.number, WEB)


def test_two_replicas_with_different_label_sets_never_share_a_number() -> None:
    for out in interleavings(
        [allocator_actor(WEB, 300, 301), allocator_actor(DB, 300, 302)],
        FakeCas,
    ):
        a, b = out.results
        assert a.number != b.number
        assert out.store.holds(a.number, WEB) and out.store.holds(b.number, DB)


def test_two_replicas_reviving_one_orphan_agree_in_every_interleaving() -> None:
    def seeded() -> FakeCas:
        store = FakeCas()
        store.seed(555, WEB, publish=False)
        return store

    for out in interleavings([allocator_actor(WEB, 300), allocator_actor(WEB, 400)], seeded):
        a, b = out.results
        assert a.number == b.number == 555


@pytest.mark.parametrize("know_orphans", [True, False], ids=["fresh-index", "stale-index"])
def test_a_release_racing_a_new_user_never_frees_a_number_in_use(know_orphans: bool) -> None:
    """The release of 700 (unused for its grace period) races a pod that appears and needs the
    same labels: in every order, the number the allocator ends up with stays held."""

    def world() -> FakeCas:
        store = FakeCas()
        store.seed(700, WEB)
        flags = {"pod": False}

        def recheck(number: int) -> bool:  # weir-k8s as of now: is 700 unused?
            named = store.number_of(WEB)
            return not (flags["pod"] and named in (None, number))

        def before(op: Op) -> None:
            if isinstance(op, Get) and op.key == "pod-appears":
                flags["pod"] = True

        store.recheck, store.before = recheck, before
        return store

    def gc(store: FakeCas) -> Generator[Op, Reply, Release]:
        result: Release = yield from release(
            IdentityId(700), WEB, H, labels_revision=store.revisions[LABELS_KEY]
        )
        return result

    def new_pod(store: FakeCas) -> Generator[Op, Reply, Allocation]:
        yield Get("pod-appears")  # the pod lands in weir-k8s; the allocator sees it after
        result: Allocation = yield from allocator_actor(WEB, 900, know_orphans=know_orphans)(store)
        return result

    outcomes = set()
    for out in interleavings([gc, new_pod], world):
        released, allocation = out.results
        outcomes.add((released.outcome, allocation.how))
        assert out.store.holds(allocation.number, WEB), out.schedule
        if released.outcome is Outcome.RELEASED:
            assert allocation.number != 700
    # The race really is explored: every way it can end happens somewhere. (A replica that
    # does not know the orphan publishes a fresh number instead of touching 700.)
    ends = {Outcome.RELEASED, Outcome.IN_USE} | ({Outcome.CHANGED} if know_orphans else set())
    assert {o for o, _ in outcomes} == ends
    hows = {How.ADOPTED, How.CREATED} | ({How.REVIVED} if know_orphans else set())
    assert {h for _, h in outcomes} == hows
