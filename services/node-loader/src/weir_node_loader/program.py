"""The endpoint programs: bpf/lxc.c, compiled once by BCC at start and never per pod.

BCC rewrites map calls (`m.lookup(&k)`) only in the file it is given, not in the headers that
file includes, so a helper in bpf/lib would be left calling a struct member. `bundle` therefore
inlines the quoted `#include "..."` lines of our own sources into one translation unit — exactly
what the preprocessor would do, nothing generated — with `#line` markers so every compiler
message still names the right file and line. Settings arrive as -D flags; the flags and a hash
of the bundled sources are logged at every load, and `weir bpf program` prints the bundle.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weir_node_loader import bpfsys, maps
from weir_node_loader.maps import Direction

log = logging.getLogger("weir.node_loader.program")

PROGRAM_FILE = "lxc.c"
# The entry function of each hook (bpf/lxc.c); also the name of the tc filter that runs it.
ENTRIES: dict[Direction, str] = {
    Direction.FROM_POD: "weir_from_pod",
    Direction.TO_POD: "weir_to_pod",
}
_LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')
_UNSAFE_IN_STRING = re.compile(r'["\\\n]')


class ProgramError(Exception):
    """The BPF sources could not be found, bundled, compiled or loaded."""


@dataclass(frozen=True, slots=True)
class LoadedProg:
    direction: Direction
    name: str
    fd: int
    id: int
    tag: str
    map_ids: frozenset[int]


@dataclass(frozen=True)
class Program:
    """The loaded programs; `bpf` keeps BCC's module (and so the program fds) alive."""

    progs: dict[Direction, LoadedProg]
    cflags: tuple[str, ...]
    source_sha256: str
    bpf: Any


def find_bpf_dir(configured: str = "") -> Path:
    """`configured`, else the bpf/ directory of the tree this package runs from (the repository
    in development, /app in the image)."""
    if configured:
        path = Path(configured)
        if not (path / PROGRAM_FILE).is_file():
            raise ProgramError(f"bpf_dir {path} has no {PROGRAM_FILE}")
        return path
    for parent in Path(__file__).resolve().parents:
        if (parent / "bpf" / PROGRAM_FILE).is_file():
            return parent / "bpf"
    raise ProgramError(f"cannot find bpf/{PROGRAM_FILE} above {Path(__file__).parent}")


def bundle(bpf_dir: Path, entry: str = PROGRAM_FILE) -> str:
    """`entry` with its local includes inlined (each file once), as one source text."""
    out: list[str] = []
    done: set[Path] = set()

    def emit(path: Path, shown: str) -> None:
        done.add(path)
        out.append(f'#line 1 "{shown}"')
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = _LOCAL_INCLUDE.match(line)
            if not match:
                out.append(line)
                continue
            target = (path.parent / match.group(1)).resolve()
            if not target.is_relative_to(bpf_dir.resolve()) or not target.is_file():
                raise ProgramError(f"{shown}:{number}: cannot include {match.group(1)!r}")
            if target not in done:
                emit(target, str(target.relative_to(bpf_dir.resolve())))
            out.append(f'#line {number + 1} "{shown}"')

    emit((bpf_dir / entry).resolve(), entry)
    return "\n".join(out) + "\n"


def cflags(pin_dir: Path) -> tuple[str, ...]:
    if _UNSAFE_IN_STRING.search(str(pin_dir)):
        raise ProgramError(f"pin directory {pin_dir!s} cannot be a C string literal")
    defines = {"WEIR_PIN_DIR": f'"{pin_dir}"', **maps.defines()}
    return tuple(f"-D{name}={value}" for name, value in sorted(defines.items()))


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def compile_program(bpf_dir: Path, pin_dir: Path) -> Program:
    """Compile and load both hooks. Maps are created and pinned under `pin_dir` when missing and
    re-opened when present (check them with pins.check_existing first)."""
    from bcc import BPF  # BCC only where a program is compiled: the CLI never imports it

    text = bundle(bpf_dir)
    flags = cflags(pin_dir)
    digest = source_hash(text)
    try:
        module = BPF(text=text.encode(), cflags=list(flags))
        progs: dict[Direction, LoadedProg] = {}
        for direction, name in ENTRIES.items():
            fn = module.load_func(name.encode(), BPF.SCHED_CLS)
            info = bpfsys.prog_info(fn.fd)
            progs[direction] = LoadedProg(
                direction, name, fn.fd, info.id, info.tag, frozenset(info.map_ids)
            )
    except Exception as e:  # BCC raises bare Exception for compile and load failures
        raise ProgramError(f"cannot compile or load bpf/{PROGRAM_FILE}: {e}") from e
    log.info(
        "loaded bpf/%s (sha256 %s) with %s",
        PROGRAM_FILE,
        digest[:16],
        " ".join(flags),
        extra={
            "bpf_source_sha256": digest,
            "bpf_cflags": list(flags),
            "bpf_progs": {p.name: {"id": p.id, "tag": p.tag} for p in progs.values()},
        },
    )
    return Program(progs=progs, cflags=flags, source_sha256=digest, bpf=module)
