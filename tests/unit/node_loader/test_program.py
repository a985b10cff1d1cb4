"""Bundling bpf/lxc.c: local includes inlined once, with #line markers; flags from one place."""

from __future__ import annotations

from pathlib import Path

import pytest
from weir_node_loader.program import ProgramError, bundle, cflags, find_bpf_dir, source_hash


def test_the_real_program_bundles_every_header_once() -> None:
    text = bundle(find_bpf_dir())
    for header in ("lib/common.h", "lib/endpoints.h", "lib/accounting.h"):
        assert text.count(f'#line 1 "{header}"') == 1
    assert '#include "' not in text
    assert "int weir_from_pod(struct __sk_buff *skb)" in text


def test_line_markers_point_back_at_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.h").write_text("int a;\n")
    (tmp_path / "lxc.c").write_text('// one\n#include "lib/a.h"\nint b;\n')
    assert bundle(tmp_path).splitlines() == [
        '#line 1 "lxc.c"',
        "// one",
        '#line 1 "lib/a.h"',
        "int a;",
        '#line 3 "lxc.c"',
        "int b;",
    ]


def test_an_include_outside_the_tree_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lxc.c").write_text('#include "../secret.h"\n')
    (tmp_path.parent / "secret.h").write_text("")
    with pytest.raises(ProgramError, match=r"lxc\.c:1: cannot include"):
        bundle(tmp_path)


def test_flags_carry_the_pin_dir_and_capacities_and_refuse_unquotable_paths() -> None:
    flags = cflags(Path("/sys/fs/bpf/weir/n1"))
    assert '-DWEIR_PIN_DIR="/sys/fs/bpf/weir/n1"' in flags
    assert "-DWEIR_MAX_ENDPOINTS=1024" in flags
    with pytest.raises(ProgramError):
        cflags(Path('/sys/fs/bpf/we"ir'))


def test_the_hash_changes_with_the_source() -> None:
    assert source_hash("a") != source_hash("b") and len(source_hash("a")) == 64
