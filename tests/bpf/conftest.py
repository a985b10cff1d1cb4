"""Fixtures for the datapath tests: bpf/lxc.c compiled by BCC with its maps pinned in a test
directory of their own (/sys/fs/bpf/weir-test-<random>/), removed afterwards.

Programs run on crafted packets through BPF_PROG_TEST_RUN: nothing is attached anywhere and no
network namespace is involved (the kernel hands the program the packet on lo, ifindex 1).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from weir_node_loader.datapath_maps import DatapathMaps
from weir_node_loader.endpoint_maps import EndpointMaps
from weir_node_loader.program import Program, compile_program, find_bpf_dir

from tests.bpf.datapath import Datapath
from tests.support.processes import require

BPFFS = Path("/sys/fs/bpf")


def require_bpf() -> None:
    require(os.geteuid() == 0, "BPF tests need root")
    require(os.path.ismount(BPFFS), "bpffs is not mounted on /sys/fs/bpf (run `make setup`)")
    require(importlib.util.find_spec("bcc") is not None, "BCC is not importable (run `make setup`)")


@pytest.fixture
def test_root() -> Iterator[Path]:
    require_bpf()
    root = BPFFS / f"weir-test-{uuid.uuid4().hex[:12]}"
    root.mkdir()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pin_dir(test_root: Path) -> Path:
    path = test_root / "node-1"
    path.mkdir()
    return path


@pytest.fixture
def loaded(pin_dir: Path) -> Program:
    return compile_program(find_bpf_dir(), pin_dir)


@pytest.fixture
def endpoint_maps(loaded: Program, pin_dir: Path) -> Iterator[EndpointMaps]:
    with EndpointMaps.open(pin_dir) as m:
        yield m


@pytest.fixture
def datapath(loaded: Program, pin_dir: Path) -> Iterator[Datapath]:
    """The programs and every map, the endpoint under test registered on lo, events on."""
    with EndpointMaps.open(pin_dir) as endpoints, DatapathMaps.open(pin_dir) as dp:
        d = Datapath(loaded, endpoints, dp)
        d.register()
        d.settings()
        yield d
