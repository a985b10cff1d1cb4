"""The bpf(2) system call through ctypes: the few commands node-loader needs besides BCC.

BCC 0.26 compiles and loads programs, but offers no way to ask the kernel what a pinned map
really is, which program a tc filter runs, or to run a program on a crafted packet. This module
covers exactly those: pin and open pins (OBJ_PIN, OBJ_GET), describe maps and programs
(OBJ_GET_INFO_BY_FD, PROG_GET_FD_BY_ID), read and write map entries one at a time (including
iteration with GET_NEXT_KEY), and BPF_PROG_TEST_RUN. It loads nothing and compiles nothing, so
`weir bpf` can read the pins with node-loader down and without BCC.

Each `bpf_attr` variant is declared as its own ctypes struct, padded to a fixed size with zeros:
the kernel accepts a larger attr only when the bytes it does not know are zero.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# bpf(2) commands (include/uapi/linux/bpf.h, enum bpf_cmd)
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
MAP_GET_NEXT_KEY = 4
OBJ_PIN = 6
OBJ_GET = 7
PROG_TEST_RUN = 10
PROG_GET_FD_BY_ID = 13
OBJ_GET_INFO_BY_FD = 15
MAP_LOOKUP_BATCH = 24

# map update flags
ANY = 0
NOEXIST = 1
EXIST = 2

# file_flags of OBJ_GET
F_RDONLY = 1 << 3

_SYSCALL_NR = {"x86_64": 321, "aarch64": 280}
_ATTR_SIZE = 128  # bytes; every attr below is padded to this
_TAG_SIZE = 8
_OBJ_NAME_LEN = 16

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


class BpfError(OSError):
    """A bpf(2) command failed; errno and the command are kept."""


def _padded(fields: list[tuple[str, type]]) -> list[tuple[str, type]]:
    size = sum(ct.sizeof(t) for _, t in fields)
    return [*fields, ("_pad", ct.c_uint8 * (_ATTR_SIZE - size))]


class _MapElemAttr(ct.Structure):
    _fields_ = _padded(
        [
            ("map_fd", ct.c_uint32),
            ("_pad0", ct.c_uint32),
            ("key", ct.c_uint64),
            ("value", ct.c_uint64),  # or next_key
            ("flags", ct.c_uint64),
        ]
    )


class _BatchAttr(ct.Structure):
    _fields_ = _padded(
        [
            ("in_batch", ct.c_uint64),
            ("out_batch", ct.c_uint64),
            ("keys", ct.c_uint64),
            ("values", ct.c_uint64),
            ("count", ct.c_uint32),
            ("map_fd", ct.c_uint32),
            ("elem_flags", ct.c_uint64),
            ("flags", ct.c_uint64),
        ]
    )


class _ObjAttr(ct.Structure):
    _fields_ = _padded(
        [("pathname", ct.c_uint64), ("bpf_fd", ct.c_uint32), ("file_flags", ct.c_uint32)]
    )


class _InfoAttr(ct.Structure):
    _fields_ = _padded([("bpf_fd", ct.c_uint32), ("info_len", ct.c_uint32), ("info", ct.c_uint64)])


class _GetIdAttr(ct.Structure):
    _fields_ = _padded([("id", ct.c_uint32), ("next_id", ct.c_uint32), ("open_flags", ct.c_uint32)])


class _TestRunAttr(ct.Structure):
    _fields_ = _padded(
        [
            ("prog_fd", ct.c_uint32),
            ("retval", ct.c_uint32),
            ("data_size_in", ct.c_uint32),
            ("data_size_out", ct.c_uint32),
            ("data_in", ct.c_uint64),
            ("data_out", ct.c_uint64),
            ("repeat", ct.c_uint32),
            ("duration", ct.c_uint32),
            ("ctx_size_in", ct.c_uint32),
            ("ctx_size_out", ct.c_uint32),
            ("ctx_in", ct.c_uint64),
            ("ctx_out", ct.c_uint64),
            ("flags", ct.c_uint32),
            ("cpu", ct.c_uint32),
            ("batch_size", ct.c_uint32),
        ]
    )


class _MapInfo(ct.Structure):
    """The head of struct bpf_map_info; the zeroed tail covers fields newer kernels add."""

    _fields_ = [
        ("type", ct.c_uint32),
        ("id", ct.c_uint32),
        ("key_size", ct.c_uint32),
        ("value_size", ct.c_uint32),
        ("max_entries", ct.c_uint32),
        ("map_flags", ct.c_uint32),
        ("name", ct.c_char * _OBJ_NAME_LEN),
        ("_rest", ct.c_uint8 * 88),
    ]


class _ProgInfo(ct.Structure):
    """The head of struct bpf_prog_info (up to its name), with a zeroed tail."""

    _fields_ = [
        ("type", ct.c_uint32),
        ("id", ct.c_uint32),
        ("tag", ct.c_uint8 * _TAG_SIZE),
        ("jited_prog_len", ct.c_uint32),
        ("xlated_prog_len", ct.c_uint32),
        ("jited_prog_insns", ct.c_uint64),
        ("xlated_prog_insns", ct.c_uint64),
        ("load_time", ct.c_uint64),
        ("created_by_uid", ct.c_uint32),
        ("nr_map_ids", ct.c_uint32),
        ("map_ids", ct.c_uint64),
        ("name", ct.c_char * _OBJ_NAME_LEN),
        ("_rest", ct.c_uint8 * 160),
    ]


@dataclass(frozen=True, slots=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str


@dataclass(frozen=True, slots=True)
class ProgInfo:
    type: int
    id: int
    tag: str  # hex, as `bpftool prog` and `tc filter show` print it
    name: str
    map_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TestRun:
    retval: int
    data_out: bytes
    duration_ns: int  # average per repetition


def _syscall_nr() -> int:
    machine = platform.machine()
    if machine not in _SYSCALL_NR:
        raise BpfError(errno.ENOSYS, f"bpf(2): unsupported architecture {machine}")
    return _SYSCALL_NR[machine]


def _bpf(cmd: int, attr: ct.Structure, what: str) -> int:
    ret = int(_libc.syscall(_syscall_nr(), cmd, ct.byref(attr), ct.sizeof(attr)))
    if ret < 0:
        err = ct.get_errno()
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return ret


def _addr(buf: ct.Array[ct.c_char] | ct.Structure | ct.Array[ct.c_uint32]) -> int:
    return ct.addressof(buf)


def obj_pin(fd: int, path: str | Path) -> None:
    """Pin the map or program behind `fd` at `path` (a file on bpffs)."""
    p = ct.create_string_buffer(os.fsencode(path))
    _bpf(OBJ_PIN, _ObjAttr(pathname=_addr(p), bpf_fd=fd), f"pin {path}")


def obj_get(path: str | Path, *, readonly: bool = False) -> int:
    """A new fd for the object pinned at `path`; the caller closes it."""
    p = ct.create_string_buffer(os.fsencode(path))
    attr = _ObjAttr(pathname=_addr(p), file_flags=F_RDONLY if readonly else 0)
    return _bpf(OBJ_GET, attr, f"open pin {path}")


def fd_kind(fd: int) -> str:
    """'map', 'prog', 'link' or 'other': what a bpf fd refers to (from its anon inode name)."""
    target = os.readlink(f"/proc/self/fd/{fd}")
    return {
        "anon_inode:bpf-map": "map",
        "anon_inode:bpf-prog": "prog",
        "anon_inode:bpf_link": "link",
    }.get(target, "other")


def map_info(fd: int) -> MapInfo:
    info = _MapInfo()
    attr = _InfoAttr(bpf_fd=fd, info_len=ct.sizeof(info), info=_addr(info))
    _bpf(OBJ_GET_INFO_BY_FD, attr, "map info")
    return MapInfo(
        type=info.type,
        id=info.id,
        key_size=info.key_size,
        value_size=info.value_size,
        max_entries=info.max_entries,
        flags=info.map_flags,
        name=info.name.decode(errors="replace"),
    )


def prog_info(fd: int, *, max_maps: int = 64) -> ProgInfo:
    ids = (ct.c_uint32 * max_maps)()
    info = _ProgInfo(nr_map_ids=max_maps, map_ids=_addr(ids))
    attr = _InfoAttr(bpf_fd=fd, info_len=ct.sizeof(info), info=_addr(info))
    _bpf(OBJ_GET_INFO_BY_FD, attr, "prog info")
    return ProgInfo(
        type=info.type,
        id=info.id,
        tag=bytes(info.tag).hex(),
        name=info.name.decode(errors="replace"),
        map_ids=tuple(ids[i] for i in range(min(info.nr_map_ids, max_maps))),
    )


def prog_fd_by_id(prog_id: int) -> int:
    """A new fd for the loaded program with this id (ENOENT when it is gone)."""
    return _bpf(PROG_GET_FD_BY_ID, _GetIdAttr(id=prog_id), f"open prog id {prog_id}")


def prog_info_by_id(prog_id: int) -> ProgInfo:
    fd = prog_fd_by_id(prog_id)
    try:
        return prog_info(fd)
    finally:
        os.close(fd)


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value stored under `key`, or None. `value_size` is the whole buffer the kernel
    fills (for a per-CPU map: the rounded value size times the possible CPUs)."""
    k = ct.create_string_buffer(key, len(key))
    v = ct.create_string_buffer(value_size)
    attr = _MapElemAttr(map_fd=fd, key=_addr(k), value=_addr(v))
    try:
        _bpf(MAP_LOOKUP_ELEM, attr, "map lookup")
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return v.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = ANY) -> bool:
    """Write one entry. With NOEXIST, False (and nothing written) when the key exists."""
    k = ct.create_string_buffer(key, len(key))
    v = ct.create_string_buffer(value, len(value))
    attr = _MapElemAttr(map_fd=fd, key=_addr(k), value=_addr(v), flags=flags)
    try:
        _bpf(MAP_UPDATE_ELEM, attr, "map update")
    except BpfError as e:
        if flags == NOEXIST and e.errno == errno.EEXIST:
            return False
        raise
    return True


def map_delete(fd: int, key: bytes) -> bool:
    """Delete one entry; False when it was not there."""
    k = ct.create_string_buffer(key, len(key))
    try:
        _bpf(MAP_DELETE_ELEM, _MapElemAttr(map_fd=fd, key=_addr(k)), "map delete")
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return False
        raise
    return True


def map_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after `key` (the first key for None), or None at the end."""
    nxt = ct.create_string_buffer(key_size)
    attr = _MapElemAttr(map_fd=fd, value=_addr(nxt))
    if key is not None:
        k = ct.create_string_buffer(key, len(key))
        attr.key = _addr(k)
    try:
        _bpf(MAP_GET_NEXT_KEY, attr, "map next key")
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return nxt.raw


def map_keys(fd: int, key_size: int, limit: int) -> list[bytes]:
    """Every key of a hash map, at most `limit` (its max_entries): a bounded walk.

    A key deleted during the walk makes the kernel restart from the first key; the set of keys
    seen guards against visiting any twice.
    """
    keys: list[bytes] = []
    seen: set[bytes] = set()
    key: bytes | None = None
    for _ in range(2 * limit + 1):
        key = map_next_key(fd, key, key_size)
        if key is None:
            break
        if key not in seen:
            seen.add(key)
            keys.append(key)
    return keys


def map_lookup_batch(
    fd: int, key_size: int, value_size: int, *, chunk: int = 4096
) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a hash map by BPF_MAP_LOOKUP_BATCH, `chunk` entries per call (one
    syscall per chunk instead of two per entry). Not a snapshot: entries change meanwhile."""
    out: list[tuple[bytes, bytes]] = []
    keys = ct.create_string_buffer(key_size * chunk)
    values = ct.create_string_buffer(value_size * chunk)
    token_in = ct.create_string_buffer(8)  # hash maps' batch token: a bucket index
    token_out = ct.create_string_buffer(8)
    first = True
    while True:
        attr = _BatchAttr(
            in_batch=0 if first else _addr(token_in),
            out_batch=_addr(token_out),
            keys=_addr(keys),
            values=_addr(values),
            count=chunk,
            map_fd=fd,
        )
        done = False
        try:
            _bpf(MAP_LOOKUP_BATCH, attr, "map lookup batch")
        except BpfError as e:
            if e.errno != errno.ENOENT:
                raise
            done = True
        raw_k, raw_v = keys.raw, values.raw
        for i in range(attr.count):
            out.append(
                (
                    raw_k[i * key_size : (i + 1) * key_size],
                    raw_v[i * value_size : (i + 1) * value_size],
                )
            )
        if done:
            return out
        ct.memmove(token_in, token_out, 8)
        first = False


def prog_test_run(fd: int, data: bytes, *, repeat: int = 1) -> TestRun:
    """Run a loaded program on `data` (a whole frame for tc programs) with BPF_PROG_TEST_RUN.
    Map side effects are real: run it on maps of its own."""
    data_in = ct.create_string_buffer(data, len(data))
    out_size = len(data) + 256
    data_out = ct.create_string_buffer(out_size)
    attr = _TestRunAttr(
        prog_fd=fd,
        data_size_in=len(data),
        data_size_out=out_size,
        data_in=_addr(data_in),
        data_out=_addr(data_out),
        repeat=repeat,
    )
    _bpf(PROG_TEST_RUN, attr, "prog test run")
    return TestRun(attr.retval, data_out.raw[: attr.data_size_out], attr.duration)


@cache
def possible_cpus() -> int:
    """How many CPUs the kernel sizes per-CPU map values for (not just the online ones)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count
