"""Network namespaces by name under /run/netns, made the way `ip netns add` makes them, and
switching the calling thread into one — for every Weir process that works across namespaces
(node-loader reaching its node, the local kubelet serving pods, the dev tools probing them).

A named namespace is a bind mount of a namespace file onto /run/netns/<name>, with
/run/netns itself a shared mount (so a namespace made here is visible to other mount
namespaces, and `ip netns` tools see ours). Namespaces belong to threads, not processes:
`unshare(CLONE_NEWNET)` and `setns(2)` move only the calling thread, which is what lets one
asyncio thread step into a pod's namespace, open a socket there and step back out. A socket
stays in the namespace it was created in.

Everything here is synchronous and fast (microseconds to a few milliseconds); callers run it
on the event loop thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: name, then ifr_flags in the 24-byte union
THREAD_NETNS = "/proc/thread-self/ns/net"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`.

    Also the preexec_fn body for CNI plugins (the fd is opened by the parent, so the child
    only makes this one system call between fork and exec)."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def path_of(name: str, run_dir: Path = RUN_DIR) -> Path:
    """A namespace name under run_dir; a value holding a '/' is already a path."""
    return Path(name) if "/" in name else run_dir / name


def is_netns(path: Path) -> bool:
    """True when `path` is (a bind mount of) a network namespace file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False  # a plain file: a namespace whose mount never happened
    finally:
        os.close(fd)


def _ensure_run_dir(run_dir: Path) -> None:
    """Make run_dir a shared mount point, as iproute2 does, so the bind mounts propagate."""
    run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = str(run_dir).encode()
    if _libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, f"mount --make-rshared {run_dir}")
    # Not a mount point yet: bind it onto itself, then share it.
    _check(_libc.mount(target, target, b"none", MS_BIND | MS_REC, None), f"bind {run_dir}")
    _check(_libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None), f"share {run_dir}")


def create(name: str, run_dir: Path = RUN_DIR) -> Path:
    """Create the named namespace with its loopback up; a no-op when it already exists."""
    path = path_of(name, run_dir)
    if is_netns(path):
        return path
    _ensure_run_dir(run_dir)
    # A file left by a crash between creating it and mounting onto it is reused.
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0))
    try:
        with _restoring_netns():
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            _check(
                _libc.mount(THREAD_NETNS.encode(), str(path).encode(), b"none", MS_BIND, None),
                f"bind mount {path}",
            )
            _loopback_up()
    except OSError:
        with contextlib.suppress(OSError):
            _libc.umount2(str(path).encode(), MNT_DETACH)
            path.unlink()
        raise
    return path


def delete(name: str, run_dir: Path = RUN_DIR) -> None:
    """Remove the named namespace (it lives on while sockets or processes still hold it)."""
    path = path_of(name, run_dir)
    if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # not mounted / not there: fine
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _restoring_netns() -> Iterator[None]:
    """Run the body, then put the calling thread back into the namespace it started in."""
    home = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield
    finally:
        try:
            setns(home)
        except OSError:
            # Every later socket of this thread would open in the wrong namespace.
            log.critical("cannot return to the original network namespace; aborting")
            os.abort()
        finally:
            os.close(home)


@contextlib.contextmanager
def entered(path: Path) -> Iterator[None]:
    """Switch the calling thread into the namespace at `path` for the body, then back."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _restoring_netns():
            setns(target)
            yield
    finally:
        os.close(target)


def _loopback_up() -> None:
    """Bring `lo` up in the calling thread's namespace (what the CNI loopback plugin does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0))
        flags = struct.unpack(_IFREQ, got)[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | IFF_UP))
