"""policy.py: port ranges as prefixes, EndpointPolicy as map rows, and the slot-flip plan."""

from __future__ import annotations

import random

import pytest
from weir.models import DirectionPolicy, EndpointPolicy, PolicyEntry, Verdict
from weir_node_loader import maps, policy
from weir_node_loader.maps import Direction, EpPolicyFlag
from weir_node_loader.policy import Compiled, EpConfig, Realized, Row, RowValue

ALLOW, DENY = int(maps.Verdict.ALLOW), int(maps.Verdict.DENY)
IN, OUT = int(Direction.TO_POD), int(Direction.FROM_POD)


def covered(prefixes: list[tuple[int, int]]) -> set[int]:
    out: set[int] = set()
    for port, bits in prefixes:
        size = 1 << (16 - bits)
        assert port % size == 0, (port, bits)  # aligned: a real prefix
        out |= set(range(port, port + size))
    return out


@pytest.mark.parametrize(
    ("first", "last", "count"),
    [(80, 80, 1), (0, 65535, 1), (8000, 8080, 3), (1, 65534, 30), (1024, 65535, 6), (0, 1, 1)],
)
def test_a_port_range_is_covered_exactly_by_few_prefixes(first: int, last: int, count: int) -> None:
    found = policy.port_prefixes(first, last)
    assert covered(found) == set(range(first, last + 1))
    assert len(found) == count


def test_random_port_ranges_are_covered_exactly() -> None:
    rng = random.Random(7)
    for _ in range(300):
        a, b = sorted(rng.randrange(65536) for _ in range(2))
        found = policy.port_prefixes(a, b)
        assert covered(found) == set(range(a, b + 1)) and len(found) <= 30


def test_port_ranges_outside_16_bits_are_refused() -> None:
    with pytest.raises(ValueError):
        policy.port_prefixes(10, 9)
    with pytest.raises(ValueError):
        policy.port_prefixes(1, 70000)


def test_entries_become_rows_of_the_right_prefix_lengths() -> None:
    any_proto = policy.rows_of(Direction.TO_POD, PolicyEntry(identity=5, protocol=0))
    assert any_proto == [Row(IN, 5, 0, maps.POLICY_PREFIX_ANY_PROTO)]
    any_port = policy.rows_of(Direction.TO_POD, PolicyEntry(identity=0, protocol=6))
    assert any_port == [Row(IN, 0, 6, maps.POLICY_PREFIX_ANY_PORT)]
    one = policy.rows_of(Direction.FROM_POD, PolicyEntry(identity=5, protocol=17, port=53))
    assert one == [Row(OUT, 5, 17, maps.POLICY_PREFIX_FULL, 53)]
    rng = policy.rows_of(
        Direction.TO_POD, PolicyEntry(identity=5, protocol=6, port=8000, end_port=8080)
    )
    assert [r.port_range for r in rng] == [(8000, 8063), (8064, 8079), (8080, 8080)]


@pytest.mark.parametrize(
    "entry",
    [
        PolicyEntry(identity=1, protocol=0, port=80),
        PolicyEntry(identity=1, protocol=6, port=0, end_port=90),
        PolicyEntry(identity=1, protocol=6, port=90, end_port=80),
        PolicyEntry(identity=1, protocol=300),
        PolicyEntry(identity=-1, protocol=6),
    ],
)
def test_entries_that_cannot_be_realized_are_refused(entry: PolicyEntry) -> None:
    with pytest.raises(ValueError):
        policy.rows_of(Direction.TO_POD, entry)


def pol(
    ingress: tuple[PolicyEntry, ...] | None = None,
    egress: tuple[PolicyEntry, ...] | None = None,
    *,
    ipblock: bool = True,
) -> EndpointPolicy:
    return EndpointPolicy(
        node="n",
        pod_namespace="ns",
        pod_name="p",
        pod_uid="u",
        identity=1000,
        ingress=DirectionPolicy(
            enforced=ingress is not None, default_cookie=7, entries=ingress or ()
        ),
        egress=DirectionPolicy(enforced=egress is not None, default_cookie=8, entries=egress or ()),
        ipblock_matches_pods=ipblock,
    )


def test_config_carries_enforcement_ipblock_semantics_and_default_cookies() -> None:
    compiled = policy.compile_policy(pol(ingress=(), ipblock=False))
    assert compiled.config == EpConfig(1000, EpPolicyFlag.INGRESS_ENFORCED, 7, 8)
    both = policy.compile_policy(pol(ingress=(), egress=()))
    flags = EpPolicyFlag.INGRESS_ENFORCED | EpPolicyFlag.EGRESS_ENFORCED
    assert both.config.flags == flags | EpPolicyFlag.IPBLOCK_PODS


def test_entries_of_an_unenforced_direction_are_not_written() -> None:
    compiled = policy.compile_policy(
        pol(egress=None, ingress=(PolicyEntry(identity=1, protocol=6),))
    )
    assert {r.direction for r in compiled.rows} == {IN}


def test_colliding_entries_merge_deny_first_then_smallest_cookie() -> None:
    entries = (
        PolicyEntry(identity=5, protocol=6, port=80, cookie=30),
        PolicyEntry(identity=5, protocol=6, port=80, cookie=20),
        PolicyEntry(identity=6, protocol=6, port=80, cookie=1),
        PolicyEntry(identity=6, protocol=6, port=80, cookie=2, verdict=Verdict.DENY),
    )
    rows = policy.compile_policy(pol(ingress=entries)).rows
    assert rows[Row(IN, 5, 6, maps.POLICY_PREFIX_FULL, 80)] == RowValue(ALLOW, 20)
    assert rows[Row(IN, 6, 6, maps.POLICY_PREFIX_FULL, 80)] == RowValue(DENY, 2)


def test_an_allow_inside_a_deny_of_the_same_remote_becomes_that_deny() -> None:
    entries = (
        PolicyEntry(identity=5, protocol=6, port=8080, cookie=1),  # allow one port...
        PolicyEntry(identity=5, protocol=6, cookie=9, verdict=Verdict.DENY),  # ...deny all TCP
        PolicyEntry(identity=6, protocol=6, port=8080, cookie=1),  # another remote: untouched
    )
    rows = policy.compile_policy(pol(ingress=entries)).rows
    assert rows[Row(IN, 5, 6, maps.POLICY_PREFIX_FULL, 8080)] == RowValue(DENY, 9)
    assert rows[Row(IN, 6, 6, maps.POLICY_PREFIX_FULL, 8080)] == RowValue(ALLOW, 1)


def test_bad_entries_are_skipped_and_reported() -> None:
    compiled = policy.compile_policy(
        pol(
            ingress=(
                PolicyEntry(identity=1, protocol=0, port=5),
                PolicyEntry(identity=2, protocol=6),
            )
        )
    )
    assert len(compiled.rows) == 1 and len(compiled.skipped) == 1
    assert "without a protocol" in compiled.skipped[0]


# --- the plan ---------------------------------------------------------------------------------

CFG = EpConfig(1000, 1, 7, 8)
A = Row(IN, 5, 6, maps.POLICY_PREFIX_FULL, 80)
B = Row(IN, 6, 6, maps.POLICY_PREFIX_FULL, 81)
V = RowValue(ALLOW, 1)


def test_a_new_endpoint_is_written_to_slot_0() -> None:
    flip = policy.plan(Compiled(CFG, {A: V}), None)
    assert flip is not None
    assert (flip.slot, flip.put, flip.write_config, flip.delete_after) == (0, {A: V}, True, ())


def test_what_the_maps_already_hold_needs_nothing() -> None:
    assert policy.plan(Compiled(CFG, {A: V}), Realized(CFG, 1, {1: {A: V}})) is None


def test_a_change_goes_to_the_other_slot_and_clears_the_old_one_after() -> None:
    held = Realized(CFG, 0, {0: {A: V}})
    flip = policy.plan(Compiled(CFG, {B: V}), held)
    assert flip is not None
    assert (flip.slot, flip.put, flip.write_config) == (1, {B: V}, True)
    assert flip.delete_after == (A,)  # the old slot, after the switch
    # A config change alone (say, egress now enforced) is a flip too: all rows rewritten.
    cfg2 = EpConfig(1000, 3, 7, 8)
    flip2 = policy.plan(Compiled(cfg2, {A: V}), held)
    assert flip2 is not None and (flip2.slot, flip2.put, flip2.delete_after) == (1, {A: V}, (A,))


def test_leftovers_of_an_interrupted_flip_are_cleared_then_reused() -> None:
    # Interrupted after writing slot 1 but before the switch: slot 0 is live.
    held = Realized(CFG, 0, {0: {A: V}, 1: {B: V, A: RowValue(DENY, 3)}})
    same = policy.plan(Compiled(CFG, {A: V}), held)
    assert same is not None and not same.write_config and same.delete_after == (A, B)
    changed = policy.plan(Compiled(CFG, {A: V, B: V}), held)
    assert changed is not None and changed.slot == 1
    assert changed.put == {A: V}  # B already holds the right value there
    assert changed.delete_first == () and changed.delete_after == (A,)


def test_rows_without_a_config_are_leftovers() -> None:
    held = Realized(None, 0, {1: {B: V}})
    flip = policy.plan(Compiled(CFG, {A: V}), held)
    assert flip is not None and flip.slot == 0 and flip.delete_after == (B,)


def test_describe_merges_port_prefixes_back_into_ranges() -> None:
    rows = policy.compile_policy(
        pol(ingress=(PolicyEntry(identity=5, protocol=6, port=8000, end_port=8080, cookie=4),))
    ).rows
    assert policy.describe(rows) == [(IN, 5, 6, (8000, 8080), RowValue(ALLOW, 4))]
