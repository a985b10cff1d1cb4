"""Node-local IPAM: pod addresses from the Node's podCIDR, kept as files in ipam.dataDir.

Layout (the same idea as the reference host-local plugin):

    <dataDir>/lock               flock(2)ed exclusively around every read-modify-write
    <dataDir>/<ip>               one file per allocated address: "<container id>\\n<ifname>\\n"
    <dataDir>/last_reserved_ip   the address handed out last; the next search starts after it

Every plugin process is a fresh start, so nothing is remembered outside these files: a restart
(of the plugin, the runtime or node-loader) sees exactly the live allocations and never hands
one out twice. The search is round-robin so a released address is reused as late as possible
(a stale datapath entry or conntrack state for it has time to go). The network address, the
first host (reserved for the node) and the broadcast address are never handed out.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from . import errors
from .errors import CniError

LOCK = "lock"
LAST_RESERVED = "last_reserved_ip"


class Owner(NamedTuple):
    container_id: str
    ifname: str


class Allocation(NamedTuple):
    ip: str
    new: bool  # False when the attachment already held it (a repeated ADD)


def _io_error(what: str, e: OSError) -> CniError:
    return CniError(errors.IO_FAILURE, f"IPAM: {what}", str(e))


class Store:
    """The allocations of one subnet under one data directory."""

    def __init__(self, data_dir: str, subnet: str, reserved: Iterable[str] = ()) -> None:
        self.data_dir = data_dir
        self.network = ipaddress.IPv4Network(subnet)
        self.reserved = {ipaddress.IPv4Address(ip) for ip in reserved}

    # -- public operations, each one locked transaction ---------------------------------------

    def allocate(self, container_id: str, ifname: str) -> Allocation:
        """The attachment's address: the one it already holds, or the next free one."""
        with self._locked():
            owned = self._read_all()
            for ip, owner in owned.items():
                if owner.container_id != container_id or ip not in self.network:
                    continue
                if owner.ifname == ifname:
                    return Allocation(str(ip), new=False)
                raise CniError(
                    errors.ALREADY_ATTACHED,
                    f"container {container_id} is already attached as {owner.ifname}",
                    "weir-cni gives each container one interface",
                )
            free = self._next_free(set(owned))
            if free is None:
                raise CniError(
                    errors.IPAM_EXHAUSTED,
                    f"IPAM: no free address left in {self.network}",
                    f"{len(owned)} addresses allocated in {self.data_dir}",
                )
            self._write(str(free), f"{container_id}\n{ifname}\n")
            self._write(LAST_RESERVED, f"{free}\n")
            return Allocation(str(free), new=True)

    def release(self, container_id: str, ifname: str) -> list[str]:
        """Free every address the attachment holds (normally one); returns them."""
        with self._locked():
            owned = self._read_all()
            freed = [str(ip) for ip, owner in owned.items() if owner == Owner(container_id, ifname)]
            for ip in freed:
                self._remove(ip)
            return freed

    def find(self, container_id: str, ifname: str) -> str | None:
        with self._locked():
            for ip, owner in self._read_all().items():
                if owner == Owner(container_id, ifname):
                    return str(ip)
            return None

    def allocations(self) -> dict[str, Owner]:
        with self._locked():
            return {str(ip): owner for ip, owner in self._read_all().items()}

    def release_all_but(self, keep: set[Owner], grace_s: float = 0.0) -> dict[str, Owner]:
        """GC: free every allocation whose attachment is not in `keep` and that is older than
        `grace_s` (a younger one may be an ADD the caller's list could not know yet)."""
        with self._locked():
            now = time.time()
            freed = {}
            for ip, owner in self._read_all().items():
                if owner in keep or now - self._mtime(str(ip)) < grace_s:
                    continue
                self._remove(str(ip))
                freed[str(ip)] = owner
            return freed

    def free_count(self) -> int:
        with self._locked():
            taken = set(self._read_all()) | self.reserved
            return sum(1 for ip in self._candidates() if ip not in taken)

    # -- inside the lock ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            os.makedirs(self.data_dir, mode=0o755, exist_ok=True)
            fd = os.open(os.path.join(self.data_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _io_error(f"cannot open {self.data_dir}", e) from None
        try:
            # Blocks until every other ADD/DEL on this node is through its transaction.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def _range(self) -> tuple[int, int]:
        """First and last assignable address: not the network, the node's first host, or
        the broadcast address."""
        return int(self.network.network_address) + 2, int(self.network.broadcast_address) - 1

    def _candidates(self) -> Iterator[ipaddress.IPv4Address]:
        first, last = self._range()
        for value in range(first, last + 1):
            yield ipaddress.IPv4Address(value)

    def _next_free(self, taken: set[ipaddress.IPv4Address]) -> ipaddress.IPv4Address | None:
        first, last = self._range()
        size = last - first + 1
        start = first
        previous = self._last_reserved()
        if previous is not None and first <= int(previous) <= last:
            start = int(previous) + 1
        for step in range(size):
            ip = ipaddress.IPv4Address(first + (start - first + step) % size)
            if ip not in taken and ip not in self.reserved:
                return ip
        return None

    def _last_reserved(self) -> ipaddress.IPv4Address | None:
        try:
            with open(os.path.join(self.data_dir, LAST_RESERVED)) as f:
                return ipaddress.IPv4Address(f.read().strip())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # a damaged pointer only costs the round-robin position
        except OSError as e:
            raise _io_error("cannot read the last reserved address", e) from None

    def _read_all(self) -> dict[ipaddress.IPv4Address, Owner]:
        owned: dict[ipaddress.IPv4Address, Owner] = {}
        try:
            entries = list(os.scandir(self.data_dir))
        except OSError as e:
            raise _io_error(f"cannot list {self.data_dir}", e) from None
        for entry in entries:
            if not entry.name[:1].isdigit():
                continue  # the lock, the pointer, a temp file
            try:
                ip = ipaddress.IPv4Address(entry.name)
            except ValueError:
                continue
            try:
                with open(entry.path) as f:
                    lines = f.read().split("\n")
            except FileNotFoundError:
                continue
            except OSError as e:
                raise _io_error(f"cannot read {entry.path}", e) from None
            owned[ip] = Owner(lines[0], lines[1] if len(lines) > 1 else "")
        return owned

    def _write(self, name: str, content: str) -> None:
        path = os.path.join(self.data_dir, name)
        tmp = os.path.join(self.data_dir, f".{name}.tmp")
        try:
            with open(tmp, "w") as f:
                f.write(content)
            # A reader (or a crash) sees the whole file or none of it, never an empty owner.
            os.replace(tmp, path)
        except OSError as e:
            raise _io_error(f"cannot write {path}", e) from None

    def _mtime(self, name: str) -> float:
        try:
            return os.stat(os.path.join(self.data_dir, name)).st_mtime
        except OSError:
            return 0.0

    def _remove(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.data_dir, name))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise _io_error(f"cannot remove {name}", e) from None
