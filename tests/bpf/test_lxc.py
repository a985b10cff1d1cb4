"""bpf/lxc.c on crafted packets: each hook counts its own direction, for registered endpoints
only (with no policy written, every packet passes); maps.py matches BCC's view of the maps; a
pin with another layout is refused before BCC can reuse it. The policy path: test_policy.py."""

from __future__ import annotations

import ctypes as ct
from pathlib import Path

import pytest
from bcc import BPF
from weir_node_loader import bpfsys, maps, pins
from weir_node_loader.datapath_maps import DatapathMaps
from weir_node_loader.endpoint_maps import EndpointMaps
from weir_node_loader.maps import Counter, Direction
from weir_node_loader.program import Program, compile_program, find_bpf_dir

from tests.bpf import packets
from tests.unit.node_loader.fakes import record

TC_ACT_OK = 0
LO = 1  # BPF_PROG_TEST_RUN runs tc programs on a packet "received" on lo


def run(loaded: Program, direction: Direction, frame: bytes, repeat: int = 1) -> int:
    return bpfsys.prog_test_run(loaded.progs[direction].fd, frame, repeat=repeat).retval


def test_from_pod_counts_packets_leaving_the_pod(
    loaded: Program, endpoint_maps: EndpointMaps
) -> None:
    endpoint_maps.write(record(ifindex=LO, host_ifname="lo"))
    frame = packets.icmp_echo("10.244.1.2", "10.244.1.3")
    assert run(loaded, Direction.FROM_POD, frame) == TC_ACT_OK
    assert run(loaded, Direction.FROM_POD, frame) == TC_ACT_OK
    counted = endpoint_maps.counters()[LO]
    assert counted.from_pod == Counter(2, 2 * len(frame))
    assert counted.to_pod == Counter(0, 0)
    assert endpoint_maps.counters(LO) == {LO: counted}  # one endpoint's, without the walk


def test_to_pod_counts_packets_entering_the_pod(
    loaded: Program, endpoint_maps: EndpointMaps
) -> None:
    endpoint_maps.write(record(ifindex=LO, host_ifname="lo"))
    frame = packets.icmp_echo("10.244.2.9", "10.244.1.2", size=1000)
    assert run(loaded, Direction.TO_POD, frame, repeat=5) == TC_ACT_OK
    counted = endpoint_maps.counters()[LO]
    assert counted.to_pod == Counter(5, 5 * len(frame)) and counted.from_pod == Counter()


def test_non_ip_frames_are_counted_and_passed_too(
    loaded: Program, endpoint_maps: EndpointMaps
) -> None:
    endpoint_maps.write(record(ifindex=LO, host_ifname="lo"))
    assert run(loaded, Direction.FROM_POD, packets.arp_request()) == TC_ACT_OK
    assert endpoint_maps.counters()[LO].from_pod.packets == 1


def test_a_veth_with_no_registered_endpoint_counts_nothing(
    loaded: Program, endpoint_maps: EndpointMaps
) -> None:
    endpoint_maps.write(record(ifindex=7))  # an endpoint elsewhere, not on this packet's link
    frame = packets.icmp_echo("10.244.1.2", "10.244.1.3")
    assert run(loaded, Direction.FROM_POD, frame) == TC_ACT_OK
    assert run(loaded, Direction.TO_POD, frame) == TC_ACT_OK
    assert endpoint_maps.counters() == {7: maps.Counters()}


def test_counters_need_the_endpoint_entry_not_just_counters(
    loaded: Program, endpoint_maps: EndpointMaps
) -> None:
    endpoint_maps.write(record(ifindex=LO, host_ifname="lo"))
    endpoint_maps.endpoints.delete(maps.endpoint_key(LO))  # being removed: entry goes first
    run(loaded, Direction.FROM_POD, packets.icmp_echo("10.244.1.2", "10.244.1.3"))
    assert endpoint_maps.counters()[LO].from_pod.packets == 0


def test_rewriting_an_endpoint_keeps_its_counters_and_removal_takes_all(
    loaded: Program, endpoint_maps: EndpointMaps
) -> None:
    rec = record(ifindex=LO, host_ifname="lo")
    endpoint_maps.write(rec)
    run(loaded, Direction.FROM_POD, packets.icmp_echo("10.244.1.2", "10.244.1.3"), repeat=3)
    assert endpoint_maps.write(rec) is False  # nothing to change
    assert endpoint_maps.counters()[LO].from_pod.packets == 3
    assert endpoint_maps.realized("node-1")[LO].record == rec
    assert endpoint_maps.remove(LO) is True
    assert endpoint_maps.realized("node-1") == {} and endpoint_maps.counters() == {}


def test_another_endpoint_on_a_reused_ifindex_starts_from_zero(
    loaded: Program, endpoint_maps: EndpointMaps
) -> None:
    endpoint_maps.write(record(ifindex=LO, host_ifname="lo"))
    run(loaded, Direction.FROM_POD, packets.icmp_echo("10.244.1.2", "10.244.1.3"))
    endpoint_maps.write(record("c2", LO, "10.244.1.5", host_ifname="lo"))
    assert endpoint_maps.counters()[LO].from_pod.packets == 0


def test_maps_py_matches_bccs_own_key_and_leaf_types(loaded: Program) -> None:
    def layout(t: type[ct.Structure]) -> list[tuple[str, int, int]]:
        return [(f, getattr(t, f).offset, getattr(t, f).size) for f, *_ in t._fields_]

    for spec in maps.SPECS:
        if spec.map_type == maps.MapType.RINGBUF:
            continue  # no key or value
        table = loaded.bpf[spec.name.encode()]
        leaf = table.sLeaf if spec.per_cpu else table.Leaf
        if spec.key is maps.U32Key:  # BCC's Key is a plain c_uint there
            assert ct.sizeof(table.Key) == 4, spec.name
        else:
            assert layout(spec.key) == layout(table.Key), spec.name
        assert layout(spec.value) == layout(leaf), spec.name
        assert (ct.sizeof(spec.key), ct.sizeof(spec.value)) == (
            ct.sizeof(table.Key),
            ct.sizeof(leaf),
        )
        assert table.max_entries == spec.max_entries, spec.name
    # The ring buffer's record (struct verdict_event) is checked against the header by the
    # unit tests, and decoded in every event test of test_policy.py.


def test_pins_are_what_maps_py_says_and_programs_use_them(loaded: Program, pin_dir: Path) -> None:
    assert pins.check_existing(pin_dir, maps.SPECS) == {s.name: True for s in maps.SPECS}
    with (
        EndpointMaps.open(pin_dir, readonly=True) as m,
        DatapathMaps.open(pin_dir, readonly=True) as dp,
    ):
        for prog in loaded.progs.values():
            # Every map the programs use is pinned; only the meta map is user space's alone.
            assert prog.map_ids == (m.map_ids | dp.map_ids) - {m.meta.id}
        assert sorted(p.name for p in pin_dir.iterdir()) == sorted(s.name for s in maps.SPECS)


def test_a_recompile_gives_the_same_tags_on_the_same_maps(loaded: Program, pin_dir: Path) -> None:
    again = compile_program(find_bpf_dir(), pin_dir)
    for d in Direction:
        assert again.progs[d].tag == loaded.progs[d].tag
        assert again.progs[d].map_ids == loaded.progs[d].map_ids
        assert again.progs[d].id != loaded.progs[d].id  # a second load, same instructions


def test_a_pin_with_another_layout_is_refused(pin_dir: Path) -> None:
    path = pin_dir / maps.EP_STATS.name
    # What an older build might have left: same name, a plain hash with other sizes.
    BPF(text=f'BPF_TABLE_PINNED("hash", u32, u64, old_stats, 16, "{path}");'.encode())
    assert path.exists()
    with pytest.raises(pins.PinMismatch) as refused:
        pins.check_existing(pin_dir, maps.SPECS)
    message = str(refused.value)
    assert "weir_ep_stats_v1" in message and "key size is 4, expected 8" in message
    assert "type is 1, expected 5" in message and "max entries is 16" in message
    assert path.exists()  # refused, never replaced: it may hold state


def test_a_pinned_program_where_a_map_belongs_is_refused(loaded: Program, test_root: Path) -> None:
    other = test_root / "node-2"
    other.mkdir()
    bpfsys.obj_pin(loaded.progs[Direction.FROM_POD].fd, other / maps.ENDPOINTS.name)
    with pytest.raises(pins.PinMismatch, match="is a pinned prog, not the map weir_endpoints_v1"):
        pins.check_existing(other, maps.SPECS)
