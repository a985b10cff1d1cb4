"""maps.py against bpf/lib/*.h: the same layouts, the same enums, lossless conversions.

The headers' struct and enum definitions (and numeric #defines) are compiled by the host C
compiler (no root, no BCC, no libc headers) with a `_Static_assert` for every size and field
offset the ctypes mirrors have, and for every enum value Python spells. tests/bpf/ repeats the
comparison against BCC's own Key/Leaf types of the loaded program.
"""

from __future__ import annotations

import ctypes as ct
import glob
import re
import shutil
import subprocess
from enum import IntEnum
from pathlib import Path

import pytest
from weir_node_loader import bpfsys, maps, pins
from weir_node_loader.program import find_bpf_dir

from tests.support.processes import require
from tests.unit.node_loader.fakes import record

LIB = find_bpf_dir() / "lib"
HEADERS = sorted(LIB.glob("*.h"))
DEFINITION = re.compile(r"^(?:struct|enum) \w+ \{.*?^\};", re.MULTILINE | re.DOTALL)
NUMERIC_DEFINE = re.compile(r"^#define (WEIR_\w+)[ \t]+([\w ]+?)[ \t]*(?:/\*.*)?$", re.MULTILINE)
# The kernel's fixed-width types, so the check needs no libc or kernel headers: only a compiler
# (setup's linux-headers bring gcc-12).
PRELUDE = """typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
"""


def definitions() -> str:
    """Every struct, enum and numeric #define of bpf/lib, in header order."""
    out = []
    for header in HEADERS:
        text = header.read_text()
        out += [f"#define {n} {v}" for n, v in NUMERIC_DEFINE.findall(text)]
        out += DEFINITION.findall(text)
    return "\n".join(out)


def compiler() -> str:
    found = shutil.which("cc") or shutil.which("gcc")
    found = found or next(iter(sorted(glob.glob("/usr/bin/gcc-[0-9]*"), reverse=True)), None)
    require(found is not None, "no C compiler (cc, gcc or gcc-N) to check struct layouts")
    assert found is not None
    return found


def check_in_c(tmp_path: Path, assertions: list[tuple[str, str]]) -> None:
    """Compile the header's struct and enum definitions with `_Static_assert`s on them."""
    asserts = "\n".join(f'_Static_assert({cond}, "{why}");' for cond, why in assertions)
    source = tmp_path / "layout.c"
    source.write_text(PRELUDE + definitions() + "\n" + asserts + "\n")
    result = subprocess.run(
        [compiler(), "-fsyntax-only", "-Wall", "-Werror", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def mirrors() -> list[tuple[str, type[ct.Structure]]]:
    """(C struct name, ctypes mirror) of every map key, value and ring buffer record."""
    out: list[tuple[str, type[ct.Structure]]] = []
    for spec in maps.SPECS:
        for c_name, mirror in ((spec.c_key, spec.key), (spec.c_value, spec.value)):
            if c_name:
                out.append((c_name, mirror))
            else:  # a plain __u32 key (arrays) or nothing (ring buffer)
                assert mirror in (maps.U32Key, maps.Empty), spec.name
                assert ct.sizeof(mirror) == (4 if spec.map_type != maps.MapType.RINGBUF else 0)
    return out + list(maps.RECORDS.items())


def layout_assertions() -> list[tuple[str, str]]:
    out = []
    for c_name, mirror in mirrors():
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


def enum_assertions(prefix: str, enum: type[IntEnum]) -> list[tuple[str, str]]:
    return [(f"{prefix}{m.name} == {int(m)}", f"{prefix}{m.name} is not {int(m)}") for m in enum]


def test_the_shared_enums_and_constants_are_the_headers(tmp_path: Path) -> None:
    checks = enum_assertions("WEIR_REASON_", maps.Reason)
    checks += enum_assertions("WEIR_VERDICT_", maps.Verdict)
    checks += enum_assertions("WEIR_IPCACHE_", maps.IPCacheKind)
    checks += enum_assertions("WEIR_IPCACHE_F_", maps.IPCacheFlag)
    checks += enum_assertions("WEIR_EPP_F_", maps.EpPolicyFlag)
    checks += enum_assertions("WEIR_CT_F_", maps.CtFlag)
    checks += enum_assertions("WEIR_EVENTS_", maps.EventCounter)
    checks += enum_assertions("WEIR_SETTINGS_F_", maps.SettingsFlag)
    checks += [
        (f"WEIR_{name} == {getattr(maps, name)}", f"WEIR_{name}")
        for name in ("REASON_FIRST_DROP", "EVENTS_COUNTERS")
    ]
    checks += [
        (f"WEIR_{name} == {getattr(maps, name)}", f"WEIR_{name}")
        for name in dir(maps)
        if name.startswith("POLICY_PREFIX_")
    ]
    check_in_c(tmp_path, checks)


def test_every_reason_in_the_header_has_a_python_name_and_label() -> None:
    text = (LIB / "reasons.h").read_text()
    in_c = dict(re.findall(r"^\s*WEIR_REASON_(\w+) = (\d+),", text, re.MULTILINE))
    assert {k: int(v) for k, v in in_c.items()} == {r.name: int(r) for r in maps.Reason}
    labels = [r.label for r in maps.Reason]
    assert len(set(labels)) == len(labels)
    assert all(r.is_drop == (r >= 32) for r in maps.Reason)
    assert max(maps.Reason) << 2 | 3 < maps.REASON_SLOTS


def test_every_map_is_declared_in_the_headers_under_its_versioned_name() -> None:
    text = "\n".join(h.read_text() for h in HEADERS)
    for spec in maps.SPECS:
        declared = rf"\b{spec.name}\b[^;]*\"/{spec.name}\""  # BPF_TABLE_PINNED(..., name, path)
        in_section = rf"\"/{spec.name}\"\)\)\)\s*struct {spec.name}_table_t {spec.name}\b"
        assert re.search(declared, text) or re.search(in_section, text), spec.name
        assert re.fullmatch(r"weir_\w+_v\d+", spec.name)
    assert len({s.name for s in maps.SPECS}) == len(maps.SPECS)


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
    assert maps.defines()["WEIR_MAX_ENDPOINTS"] == str(maps.MAX_ENDPOINTS)
    assert maps.defines()["WEIR_MAX_CT"] == str(maps.MAX_CT)
    sized = {s.max_entries for s in maps.SPECS if s.max_entries > 1}
    # every capacity is a -D flag, but the counters array, sized by its enum in events.h
    assert sized <= {int(v) for v in maps.defines().values()} | {maps.EVENTS_COUNTERS}
    common = (find_bpf_dir() / "lib" / "common.h").read_text()
    for name in maps.defines():
        assert f"#ifndef {name}" in common
