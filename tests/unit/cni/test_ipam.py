"""Node-local IPAM: which addresses, round-robin, persistence, exhaustion, concurrency, GC."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from weir_cni import errors
from weir_cni.errors import CniError
from weir_cni.ipam import LAST_RESERVED, Owner, Store


def store(tmp_path: Path, subnet: str = "10.244.1.0/24", **kw: object) -> Store:
    return Store(str(tmp_path / "ipam"), subnet, **kw)  # type: ignore[arg-type]


def test_first_address_skips_network_and_first_host(tmp_path: Path) -> None:
    allocation = store(tmp_path).allocate("c1", "eth0")
    assert allocation.ip == "10.244.1.2"
    assert allocation.new


def test_file_per_ip_holds_the_attachment(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.allocate("c1", "eth0")
    assert (tmp_path / "ipam" / "10.244.1.2").read_text() == "c1\neth0\n"
    assert (tmp_path / "ipam" / LAST_RESERVED).read_text().strip() == "10.244.1.2"


def test_same_attachment_gets_the_same_address(tmp_path: Path) -> None:
    s = store(tmp_path)
    first = s.allocate("c1", "eth0")
    again = s.allocate("c1", "eth0")
    assert again.ip == first.ip
    assert not again.new
    assert len(s.allocations()) == 1


def test_second_interface_of_a_container_is_refused(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.allocate("c1", "eth0")
    with pytest.raises(CniError) as info:
        s.allocate("c1", "net1")
    assert info.value.code == errors.ALREADY_ATTACHED


def test_round_robin_does_not_reuse_a_released_address_at_once(tmp_path: Path) -> None:
    s = store(tmp_path)
    a = s.allocate("c1", "eth0").ip
    assert s.release("c1", "eth0") == [a]
    b = s.allocate("c2", "eth0").ip
    assert b != a
    assert b == "10.244.1.3"


def test_wraps_around_and_never_hands_out_broadcast(tmp_path: Path) -> None:
    s = store(tmp_path, "10.0.0.0/29")  # .2 .. .6 are assignable
    ips = [s.allocate(f"c{i}", "eth0").ip for i in range(5)]
    assert ips == [f"10.0.0.{n}" for n in range(2, 7)]
    with pytest.raises(CniError) as info:
        s.allocate("c5", "eth0")
    assert info.value.code == errors.IPAM_EXHAUSTED
    s.release("c1", "eth0")  # frees 10.0.0.3
    assert s.allocate("c6", "eth0").ip == "10.0.0.3"


def test_slash_30_has_exactly_one_address(tmp_path: Path) -> None:
    s = store(tmp_path, "10.9.0.0/30")
    assert s.allocate("c1", "eth0").ip == "10.9.0.2"
    assert s.free_count() == 0
    with pytest.raises(CniError) as info:
        s.allocate("c2", "eth0")
    assert info.value.code == errors.IPAM_EXHAUSTED
    assert info.value.code >= 100
    assert not (tmp_path / "ipam" / "10.9.0.3").exists()


def test_reserved_gateway_inside_the_subnet_is_skipped(tmp_path: Path) -> None:
    s = store(tmp_path, "10.0.0.0/29", reserved=["10.0.0.2"])
    assert s.allocate("c1", "eth0").ip == "10.0.0.3"


def test_a_restart_never_hands_out_a_live_address(tmp_path: Path) -> None:
    before = store(tmp_path, "10.0.0.0/29")
    live = {before.allocate(f"c{i}", "eth0").ip for i in range(3)}
    before.release("c1", "eth0")
    live.discard("10.0.0.3")
    # A new Store is what every new plugin process (or a node reboot with the disk) sees.
    after = store(tmp_path, "10.0.0.0/29")
    new = {after.allocate(f"n{i}", "eth0").ip for i in range(2)}
    assert not new & live
    assert new == {"10.0.0.5", "10.0.0.6"}  # the round-robin position survived too
    assert after.allocate("c0", "eth0").ip in live  # and the old owner keeps its own


def test_damaged_pointer_only_resets_round_robin(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.allocate("c1", "eth0")
    (tmp_path / "ipam" / LAST_RESERVED).write_text("garbage")
    assert s.allocate("c2", "eth0").ip == "10.244.1.3"


def test_temp_and_foreign_files_are_ignored(tmp_path: Path) -> None:
    s = store(tmp_path)
    (tmp_path / "ipam").mkdir()
    (tmp_path / "ipam" / ".10.244.1.2.tmp").write_text("junk")
    (tmp_path / "ipam" / "README").write_text("junk")
    (tmp_path / "ipam" / "999.1.1.1").write_text("junk")
    assert s.allocate("c1", "eth0").ip == "10.244.1.2"


def test_release_of_unknown_attachment_is_a_no_op(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.release("nobody", "eth0") == []
    s.allocate("c1", "eth0")
    assert s.release("c1", "net1") == []
    assert s.find("c1", "eth0") == "10.244.1.2"
    assert s.find("c2", "eth0") is None


def test_gc_frees_what_the_runtime_no_longer_has(tmp_path: Path) -> None:
    s = store(tmp_path)
    for cid in ("keep", "stale", "young"):
        s.allocate(cid, "eth0")
    old = time.time() - 3600
    for ip in ("10.244.1.2", "10.244.1.3"):
        os.utime(tmp_path / "ipam" / ip, (old, old))
    freed = s.release_all_but({Owner("keep", "eth0")}, grace_s=60)
    assert freed == {"10.244.1.3": Owner("stale", "eth0")}
    assert set(s.allocations().values()) == {Owner("keep", "eth0"), Owner("young", "eth0")}


def test_data_dir_that_cannot_be_made_is_an_io_failure(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    s = Store(str(tmp_path / "file" / "ipam"), "10.0.0.0/24")
    with pytest.raises(CniError) as info:
        s.allocate("c1", "eth0")
    assert info.value.code == errors.IO_FAILURE


def _allocate_many(data_dir: str, worker: int, count: int) -> list[tuple[str, str]]:
    s = Store(data_dir, "10.1.0.0/24")
    return [(f"w{worker}-{i}", s.allocate(f"w{worker}-{i}", "eth0").ip) for i in range(count)]


def test_concurrent_processes_never_share_an_address(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "ipam")
    # 20 processes at once, as 20 plugin runs for 20 pods would be.
    with ProcessPoolExecutor(20, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(_allocate_many, data_dir, w, 10) for w in range(20)]
        got = [pair for f in futures for pair in f.result(timeout=60)]
    ips = [ip for _, ip in got]
    assert len(ips) == 200
    assert len(set(ips)) == 200
    on_disk = Store(data_dir, "10.1.0.0/24").allocations()
    assert {ip: o.container_id for ip, o in on_disk.items()} == {ip: c for c, ip in got}
