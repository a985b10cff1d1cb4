"""Pinned maps, opened through bpf(2) and checked against their `MapSpec` before use.

BCC re-opens a pinned map by path without comparing it to its declaration, so a pin left by an
older layout would be used with the new one and its bytes misread. Every pin is therefore opened
here first and its kernel-reported type, key size, value size, capacity and flags compared with
the spec; any difference is refused loudly (`PinMismatch`) rather than repaired, because the pin
holds state (counters, endpoints) that a silent re-creation would lose. A new layout takes a new
versioned name instead.
"""

from __future__ import annotations

import ctypes as ct
import os
from pathlib import Path
from typing import TypeVar

from weir_node_loader import bpfsys
from weir_node_loader.maps import MapSpec

S = TypeVar("S", bound=ct.Structure)


class PinMismatch(Exception):
    """A pin exists but is not the map its spec describes."""


def problems(spec: MapSpec, info: bpfsys.MapInfo) -> list[str]:
    """How a map's kernel description differs from its spec (empty: it matches)."""
    want = {
        "type": int(spec.map_type),
        "key size": spec.key_size,
        "value size": spec.value_size,
        "max entries": spec.max_entries,
        "flags": spec.flags,
    }
    have = {
        "type": info.type,
        "key size": info.key_size,
        "value size": info.value_size,
        "max entries": info.max_entries,
        "flags": info.flags,
    }
    return [f"{k} is {have[k]}, expected {want[k]}" for k in want if have[k] != want[k]]


class PinnedMap:
    """One open pinned map; keys and values are the spec's ctypes structs."""

    def __init__(self, spec: MapSpec, fd: int, path: Path) -> None:
        self.spec = spec
        self.fd = fd
        self.path = path
        self.id = bpfsys.map_info(fd).id
        # A per-CPU value is one copy per possible CPU, each padded to 8 bytes.
        self._stride = (spec.value_size + 7) & ~7
        self._cpus = bpfsys.possible_cpus() if spec.per_cpu else 1

    @classmethod
    def open(cls, spec: MapSpec, pin_dir: Path, *, readonly: bool = False) -> PinnedMap:
        path = spec.pin(pin_dir)
        fd = bpfsys.obj_get(path, readonly=readonly)
        try:
            kind = bpfsys.fd_kind(fd)
            if kind != "map":
                raise PinMismatch(f"{path} is a pinned {kind}, not the map {spec.name}")
            found = problems(spec, bpfsys.map_info(fd))
            if found:
                raise PinMismatch(
                    f"{path} does not match {spec.name}: {'; '.join(found)}. It holds state "
                    "from another layout: remove it deliberately (rm) to start over"
                )
            return cls(spec, fd, path)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> PinnedMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- entries ------------------------------------------------------------------------------

    def get(self, key: ct.Structure) -> ct.Structure | None:
        raw = bpfsys.map_lookup(self.fd, bytes(key), self._stride * self._cpus)
        return None if raw is None else self.spec.value.from_buffer_copy(raw)

    def get_per_cpu(self, key: ct.Structure) -> list[ct.Structure] | None:
        """A per-CPU map's value: one struct per possible CPU."""
        raw = bpfsys.map_lookup(self.fd, bytes(key), self._stride * self._cpus)
        if raw is None:
            return None
        return [
            self.spec.value.from_buffer_copy(raw, cpu * self._stride) for cpu in range(self._cpus)
        ]

    def put(self, key: ct.Structure, value: ct.Structure, flags: int = bpfsys.ANY) -> bool:
        """Write an entry (for a per-CPU map, the same value on every CPU). False only for
        NOEXIST when the key already exists."""
        one = bytes(value).ljust(self._stride, b"\0")
        return bpfsys.map_update(self.fd, bytes(key), one * self._cpus, flags)

    def delete(self, key: ct.Structure) -> bool:
        return bpfsys.map_delete(self.fd, bytes(key))

    def all_keys(self) -> list[ct.Structure]:
        raw = bpfsys.map_keys(self.fd, self.spec.key_size, self.spec.max_entries)
        return [self.spec.key.from_buffer_copy(k) for k in raw]


def check_existing(pin_dir: Path, specs: tuple[MapSpec, ...]) -> dict[str, bool]:
    """Check every pin that already exists (raises PinMismatch); name -> whether it existed.

    Run before BCC compiles: BCC re-opens existing pins as they are and creates missing ones.
    """
    existed: dict[str, bool] = {}
    for spec in specs:
        if spec.pin(pin_dir).exists():
            PinnedMap.open(spec, pin_dir).close()
            existed[spec.name] = True
        else:
            existed[spec.name] = False
    return existed


def bpffs_mount(path: Path) -> Path | None:
    """The bpffs mount holding `path`, if any (pins can only live on a bpf filesystem)."""
    best: Path | None = None
    target = path.resolve() if path.exists() else path.absolute()
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[2] != "bpf":
            continue
        mount = Path(fields[1].replace("\\040", " "))
        holds = target == mount or mount in target.parents
        if holds and (best is None or len(mount.parts) > len(best.parts)):
            best = mount
    return best
