"""maps.py against bpf/lib/endpoints.h: the same layouts, the same enum, lossless conversions.

The header's struct and enum definitions are compiled by the host C compiler (no root, no BCC,
no libc headers) with a `_Static_assert` for every size and field offset the ctypes mirrors
have. tests/bpf/ repeats the
comparison against BCC's own Key/Leaf types of the loaded program.
"""

from __future__ import annotations

import ctypes as ct
import glob
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from weir_node_loader import bpfsys, maps, pins
from weir_node_loader.program import find_bpf_dir

from tests.support.processes import require
from tests.unit.node_loader.fakes import record

HEADER = find_bpf_dir() / "lib" / "endpoints.h"
DEFINITION = re.compile(r"^(?:struct|enum) \w+ \{.*?^\};", re.MULTILINE | re.DOTALL)
# The kernel's fixed-width types, so the check needs no libc or kernel headers: only a compiler
# (setup's linux-headers bring gcc-12).
PRELUDE = """typedef unsigned char __u8;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef __u32 __be32;
"""


def compiler() -> str:
    found = shutil.which("cc") or shutil.which("gcc")
    found = found or next(iter(sorted(glob.glob("/usr/bin/gcc-[0-9]*"), reverse=True)), None)
    require(found is not None, "no C compiler (cc, gcc or gcc-N) to check struct layouts")
    assert found is not None
    return found


def check_in_c(tmp_path: Path, assertions: list[tuple[str, str]]) -> None:
    """Compile the header's struct and enum definitions with `_Static_assert`s on them."""
    definitions = "\n".join(DEFINITION.findall(HEADER.read_text()))
    asserts = "\n".join(f'_Static_assert({cond}, "{why}");' for cond, why in assertions)
    source = tmp_path / "layout.c"
    source.write_text(PRELUDE + definitions + "\n" + asserts + "\n")
    result = subprocess.run(
        [compiler(), "-fsyntax-only", "-Wall", "-Werror", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def layout_assertions() -> list[tuple[str, str]]:
    out = []
    for spec in maps.SPECS:
        for c_name, mirror in ((spec.c_key, spec.key), (spec.c_value, spec.value)):
            size = ct.sizeof(mirror)
            out.append((f"sizeof(struct {c_name}) == {size}", f"sizeof {c_name} is not {size}"))
            for field, _ in mirror._fields_:
                d = getattr(mirror, field)
                out.append(
                    (
                        f"__builtin_offsetof(struct {c_name}, {field}) == {d.offset}",
                        f"{c_name}.{field} is not at offset {d.offset}",
                    )
                )
                out.append(
                    (
                        f"sizeof(((struct {c_name} *)0)->{field}) == {d.size}",
                        f"{c_name}.{field} is not {d.size} bytes",
                    )
                )
    return out


def test_ctypes_mirrors_have_the_c_layouts(tmp_path: Path) -> None:
    check_in_c(tmp_path, layout_assertions())


def test_the_layout_check_can_fail(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="sizeof endpoint_meta is not 735"):
        check_in_c(
            tmp_path, [("sizeof(struct endpoint_meta) == 735", "sizeof endpoint_meta is not 735")]
        )


def test_the_direction_enum_is_the_headers(tmp_path: Path) -> None:
    check_in_c(
        tmp_path,
        [
            (f"WEIR_DIR_{d.name} == {int(d)}", f"WEIR_DIR_{d.name} is not {int(d)}")
            for d in maps.Direction
        ],
    )


def test_every_map_is_declared_in_the_header_under_its_versioned_name() -> None:
    text = HEADER.read_text()
    for spec in maps.SPECS:
        assert re.search(rf"\b{spec.name}\b.*\n.*\"/{spec.name}\"", text), spec.name
        assert re.fullmatch(r"weir_\w+_v\d+", spec.name)


def test_a_record_survives_the_round_trip_through_map_entries() -> None:
    rec = record(ip="10.244.3.17")
    info, meta = maps.endpoint_info(rec), maps.endpoint_meta(rec)
    assert bytes(info)[:4] == bytes([10, 244, 3, 17])  # network byte order in memory
    back = maps.record_of(rec.node, rec.host_ifindex, info, meta)
    assert back == rec


def test_text_longer_than_its_field_is_refused() -> None:
    with pytest.raises(ValueError, match="pod_name is longer than 255 bytes"):
        maps.endpoint_meta(record(pod_name="p" * 256))


def test_stats_keys_zero_their_padding() -> None:
    key = maps.stats_key(7, maps.Direction.TO_POD)
    assert bytes(key) == (7).to_bytes(4, "little") + b"\x02\x00\x00\x00"


def test_pin_problems_name_every_difference() -> None:
    spec = maps.EP_STATS
    same = bpfsys.MapInfo(5, 1, spec.key_size, spec.value_size, spec.max_entries, 0, "x")
    assert pins.problems(spec, same) == []
    wrong = bpfsys.MapInfo(1, 1, 4, 24, 10, 0, "x")
    assert pins.problems(spec, wrong) == [
        "type is 1, expected 5",
        "key size is 4, expected 8",
        "value size is 24, expected 16",
        "max entries is 10, expected 2048",
    ]


def test_capacities_reach_the_c_code_as_flags() -> None:
    assert maps.defines() == {
        "WEIR_MAX_ENDPOINTS": str(maps.MAX_ENDPOINTS),
        "WEIR_MAX_EP_STATS": str(maps.MAX_EP_STATS),
    }
    common = (find_bpf_dir() / "lib" / "common.h").read_text()
    for name in maps.defines():
        assert f"#ifndef {name}" in common
