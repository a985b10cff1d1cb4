"""Entering network namespaces from Python: setns(2) for the calling thread.

A socket keeps the namespace it was created in, so a process can open sockets in many pod
namespaces by switching in, creating the socket, and switching back — one process (and one
thread) serves or probes hundreds of pods. Only the calling thread switches; the rest of the
process stays where it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
_libc = ctypes.CDLL(None, use_errno=True)


def path_of(name_or_path: str) -> str:
    return name_or_path if "/" in name_or_path else str(NETNS_DIR / name_or_path)


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def entered(name_or_path: str) -> Iterator[None]:
    """Run the block with this thread in the given network namespace, then switch back."""
    with open("/proc/thread-self/ns/net") as here, open(path_of(name_or_path)) as there:
        setns(there.fileno())
        try:
            yield
        finally:
            setns(here.fileno())


def enter_for_good(name_or_path: str) -> None:
    """Switch this thread for good (before exec, or in a child between fork and exec)."""
    with open(path_of(name_or_path)) as there:
        setns(there.fileno())
