"""The pure endpoint core: request validation, admission, and the reconcile plan."""

from __future__ import annotations

from dataclasses import replace

import pytest
from weir_node_loader.endpoints import (
    Ensure,
    InvalidRequest,
    Purge,
    Registry,
    admission_links,
    admit,
    plan_reconcile,
    record_from_request,
    validate_container_id,
)
from weir_node_loader.kernel import Realized

from tests.unit.node_loader.fakes import NODE, record, request

# --- validation -------------------------------------------------------------------------------


def test_a_valid_request_becomes_a_record_with_normalized_macs() -> None:
    rec = record_from_request(NODE, request(mac="0A:58:0A:F4:01:02"))
    assert rec.node == NODE and rec.container_id == "c1" and rec.mac == "0a:58:0a:f4:01:02"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("container_id", "", "container_id"),
        ("container_id", "-leading-dash", "container_id"),
        ("container_id", "has/slash", "container_id"),
        ("container_id", "x" * 128, "container_id"),
        ("pod_namespace", "Upper", "pod_namespace"),
        ("pod_name", "bad_name", "pod_name"),
        ("ip", "10.244.1", "not an IPv4 address"),
        ("ip", "fd00::1", "not an IPv4 address"),
        ("ip", "0.0.0.0", "cannot be a pod address"),
        ("ip", "224.0.0.1", "cannot be a pod address"),
        ("ip", "255.255.255.255", "cannot be a pod address"),
        ("mac", "0a:58:0a:f4:01", "not a MAC address"),
        ("mac", "01:00:5e:00:00:01", "multicast"),
        ("host_mac", "zz:ee:ee:ee:ee:01", "host_mac"),
        ("host_ifname", "", "host_ifname"),
        ("host_ifname", "a-very-long-ifname", "host_ifname"),
        ("host_ifname", "has space", "host_ifname"),
        ("ifname", "a/b", "ifname"),
        ("host_ifindex", 0, "host_ifindex"),
        ("host_ifindex", -3, "host_ifindex"),
        ("netns", "", "netns"),
        ("netns", "/" + "n" * 300, "netns"),
    ],
)
def test_invalid_fields_are_refused_by_name(field: str, value: object, message: str) -> None:
    req = request(**{field: value})
    with pytest.raises(InvalidRequest, match=message):
        record_from_request(NODE, req)


def test_container_ids_follow_the_cni_rule() -> None:
    assert validate_container_id("abc-123_x.y") == "abc-123_x.y"
    with pytest.raises(InvalidRequest):
        validate_container_id("a*b")


# --- admission --------------------------------------------------------------------------------

LINKS = {1: "lo", 10: "wrc1", 11: "wrc2"}


def test_a_new_endpoint_on_an_existing_veth_is_admitted() -> None:
    adm = admit(Registry(), record(), LINKS)
    assert adm.evict == () and not adm.unchanged


def test_the_same_registration_again_is_unchanged() -> None:
    adm = admit(Registry([record()]), record(), LINKS)
    assert adm.unchanged and adm.evict == ()


def test_a_veth_that_is_not_in_the_node_namespace_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="not in the node's network namespace"):
        admit(Registry(), record(ifindex=99), LINKS)
    with pytest.raises(InvalidRequest, match="ifindex 11 is 'wrc2'"):
        admit(Registry(), record(ifindex=11), LINKS)


def test_a_container_moved_to_a_new_veth_evicts_its_old_one() -> None:
    old = record()
    new = record(ifindex=11, host_ifname="wrc2")
    adm = admit(Registry([old]), new, LINKS)
    assert adm.evict == (old,)


def test_a_live_endpoint_keeps_its_ip_and_its_veth() -> None:
    registry = Registry([record("c2", 11, "10.244.1.9", host_ifname="wrc2")])
    with pytest.raises(InvalidRequest, match=r"IP 10\.244\.1\.9 already belongs to endpoint c2"):
        admit(registry, record("c1", 10, "10.244.1.9"), LINKS)
    registry = Registry([record("c2", 10, "10.244.1.9")])
    registry.set(replace(record("c2", 10, "10.244.1.9"), host_ifname="wrc1"))
    with pytest.raises(InvalidRequest, match="veth wrc1 already belongs to endpoint c2"):
        admit(registry, record("c1", 10, "10.244.1.2"), LINKS)


def test_a_holder_whose_veth_is_gone_is_evicted_not_a_conflict() -> None:
    gone = record("c2", 12, "10.244.1.2", host_ifname="wrgone")
    adm = admit(Registry([gone]), record(), LINKS)
    assert adm.evict == (gone,)


def test_admission_asks_about_the_new_veth_and_possible_conflicts_only() -> None:
    others = [record(f"o{i}", 100 + i, f"10.244.1.{100 + i}") for i in range(50)]
    same_ip = record("dup", 20, "10.244.1.2")
    same_veth = record("twin", 10, "10.244.1.3")
    moved = record("c1", 30, "10.244.1.2")  # c1 registered earlier on another veth
    registry = Registry([*others, same_ip, same_veth, moved])
    assert admission_links(registry, record("c1", 10, "10.244.1.2")) == {10, 20, 30}
    # Whatever it asked about is all admit needs: the same decision as with every link.
    links = {10: "wrc1", 20: "wrdup", 30: "wrc1old"} | {100 + i: f"wro{i}" for i in range(50)}
    wanted = admission_links(registry, record("c1", 10, "10.244.1.2"))
    narrowed = {i: n for i, n in links.items() if i in wanted}
    for registry_links in (links, narrowed):
        with pytest.raises(InvalidRequest):
            admit(registry, record("c1", 10, "10.244.1.2"), registry_links)


# --- reconciliation ---------------------------------------------------------------------------


def plan(
    kv: dict[str, object] | None = None,
    links: dict[int, str] | None = None,
    realized: dict[int, Realized] | None = None,
    hooked: set[int] | None = None,
) -> list[Ensure | Purge]:
    return plan_reconcile(
        kv=kv or {},  # type: ignore[arg-type]
        links=links if links is not None else LINKS,
        realized=realized or {},
        hooked=hooked or set(),
    )


def test_an_intact_endpoint_is_re_adopted_with_no_problems() -> None:
    rec = record()
    actions = plan({"c1": rec}, realized={10: Realized(10, rec, True)}, hooked={10})
    assert actions == [Ensure(rec, write_kv=False, problems=())]
    assert actions[0].intact  # type: ignore[union-attr]


def test_missing_kv_is_rewritten_from_the_maps() -> None:
    rec = record()
    [action] = plan({}, realized={10: Realized(10, rec, True)}, hooked={10})
    assert action == Ensure(rec, write_kv=True, problems=("KV key missing",))


def test_maps_lost_are_rewritten_from_kv_when_the_veth_lives() -> None:
    rec = record()
    [action] = plan({"c1": rec})
    assert isinstance(action, Ensure) and action.record == rec and not action.write_kv
    assert action.problems == ("map entries missing", "programs not attached")


def test_half_written_entries_are_repaired_from_kv() -> None:
    rec = record()
    [action] = plan({"c1": rec}, realized={10: Realized(10, None, False)}, hooked={10})
    assert isinstance(action, Ensure) and action.record == rec
    assert action.problems == ("map entries differ",)


def test_half_written_entries_of_nobody_are_purged() -> None:
    assert plan({}, realized={10: Realized(10, None, False)}, hooked={10}) == [
        Purge(10, (), "no live endpoint on this link")
    ]


def test_a_veth_gone_while_down_takes_its_entries_and_kv_key() -> None:
    rec = record(ifindex=12, host_ifname="wrgone")
    actions = plan({"c1": rec}, realized={12: Realized(12, rec, True)})
    assert actions == [Purge(12, ("c1",), "veth gone")]


def test_kv_of_a_gone_veth_with_nothing_in_the_kernel_is_deleted() -> None:
    rec = record(ifindex=12, host_ifname="wrgone")
    assert plan({"c1": rec}) == [Purge(None, ("c1",), "veth gone")]


def test_a_reused_ifindex_is_not_mistaken_for_the_old_endpoint() -> None:
    old = record("old", 11, "10.244.1.7", host_ifname="wrold")  # ifindex 11 is now wrc2
    new = record("c2", 11, "10.244.1.8", host_ifname="wrc2")
    actions = plan({"old": old, "c2": new}, realized={11: Realized(11, old, True)}, hooked={11})
    assert actions[0] == Purge(None, ("old",), "ifindex 11 now serves c2")
    assert isinstance(actions[1], Ensure) and actions[1].record == new


def test_weir_filters_on_a_link_with_no_endpoint_are_detached() -> None:
    assert plan(hooked={11}) == [Purge(11, (), "Weir filters on a link with no endpoint")]


def test_an_undecodable_kv_value_is_overwritten_or_deleted() -> None:
    rec = record()
    [action] = plan({"c1": None}, realized={10: Realized(10, rec, True)}, hooked={10})
    assert isinstance(action, Ensure) and action.write_kv
    assert plan({"zz": None}) == [Purge(None, ("zz",), "undecodable KV value")]


def test_a_container_on_two_live_veths_keeps_the_one_kv_names() -> None:
    a = record("c1", 10, host_ifname="wrc1")
    b = record("c1", 11, host_ifname="wrc2")
    actions = plan(
        {"c1": a},
        realized={10: Realized(10, a, True), 11: Realized(11, b, True)},
        hooked={10, 11},
    )
    assert actions[0] == Purge(11, (), "no live endpoint on this link")
    assert isinstance(actions[1], Ensure) and actions[1].record == a


def test_purges_come_before_ensures_and_a_second_plan_is_quiet() -> None:
    keep = record()
    gone = record("c2", 12, "10.244.1.3", host_ifname="wrgone")
    actions = plan(
        {"c1": keep, "c2": gone},
        realized={10: Realized(10, keep, True), 12: Realized(12, gone, True)},
        hooked={10},
    )
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["Purge", "Ensure"]
    # After applying: only the survivor, intact.
    again = plan({"c1": keep}, realized={10: Realized(10, keep, True)}, hooked={10})
    assert again == [Ensure(keep, write_kv=False, problems=())]
