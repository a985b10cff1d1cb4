"""maps.py against bpf/lib/endpoints.h: the same layouts, the same enum, lossless conversions.

The header's struct and enum definitions are compiled by the host C compiler (no root, no BCC)
and their sizes and field offsets compared with the ctypes mirrors. tests/bpf/ repeats the
comparison against BCC's own Key/Leaf types of the loaded program.
"""

from __future__ import annotations

import ctypes as ct
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


def c_layout(tmp_path: Path) -> dict[str, int]:
    """sizeof and offsetof/sizeof of every field, and the enum values, from the C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    require(cc is not None, "no C compiler (cc) to check struct layouts")
    assert cc is not None
    definitions = "\n".join(DEFINITION.findall(HEADER.read_text()))
    prints = []
    structs = {s.c_key: s.key for s in maps.SPECS} | {s.c_value: s.value for s in maps.SPECS}
    for c_name, mirror in structs.items():
        prints.append(f'printf("{c_name} %zu\\n", sizeof(struct {c_name}));')
        for field, _ in mirror._fields_:
            prints.append(
                f'printf("{c_name}.{field} %zu %zu\\n", offsetof(struct {c_name}, {field}), '
                f"sizeof(((struct {c_name} *)0)->{field}));"
            )
    for d in maps.Direction:
        prints.append(f'printf("WEIR_DIR_{d.name} %d\\n", WEIR_DIR_{d.name});')
    source = (
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/types.h>\n"
        + definitions
        + "\nint main(void) {\n"
        + "\n".join(prints)
        + "\nreturn 0;\n}\n"
    )
    (tmp_path / "layout.c").write_text(source)
    subprocess.run(
        [cc, "-Wall", "-Werror", "-o", str(tmp_path / "layout"), str(tmp_path / "layout.c")],
        check=True,
        capture_output=True,
    )
    out = subprocess.run([str(tmp_path / "layout")], check=True, capture_output=True, text=True)
    values: dict[str, int] = {}
    for line in out.stdout.splitlines():
        name, *numbers = line.split()
        if len(numbers) == 1:
            values[name] = int(numbers[0])
        else:
            values[name + "@"], values[name] = int(numbers[0]), int(numbers[1])
    return values


def test_ctypes_mirrors_have_the_c_layouts(tmp_path: Path) -> None:
    c = c_layout(tmp_path)
    for spec in maps.SPECS:
        for c_name, mirror in ((spec.c_key, spec.key), (spec.c_value, spec.value)):
            assert ct.sizeof(mirror) == c[c_name], c_name
            assert [f for f, _ in mirror._fields_] == [
                k.split(".", 1)[1] for k in c if k.startswith(f"{c_name}.") and "@" not in k
            ]
            for field, _ in mirror._fields_:
                descr = getattr(mirror, field)
                assert (descr.offset, descr.size) == (
                    c[f"{c_name}.{field}@"],
                    c[f"{c_name}.{field}"],
                ), f"{c_name}.{field}"


def test_the_direction_enum_is_the_headers(tmp_path: Path) -> None:
    c = c_layout(tmp_path)
    assert {d.name: int(d) for d in maps.Direction} == {
        d.name: c[f"WEIR_DIR_{d.name}"] for d in maps.Direction
    }


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
