"""Service ClusterIP and NodePort allocators (pure; rebuilt from stored Services at start).

The messages are the ones kube-apiserver's allocators put in 422 field errors.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random


class AllocationError(Exception):
    """A requested or needed value cannot be allocated; `str(e)` is the upstream wording."""


class ClusterIPAllocator:
    """IPv4 addresses of one service CIDR; the network, broadcast and first host addresses
    are never handed out (the first one belongs to the `kubernetes` Service upstream)."""

    def __init__(self, cidr: str, *, rng: random.Random | None = None) -> None:
        self.network = ipaddress.IPv4Network(cidr, strict=False)
        self.cidr = str(self.network)
        first = int(self.network.network_address)
        last = int(self.network.broadcast_address)
        if last - first < 4:
            raise ValueError(f"service CIDR {cidr} is too small")
        self._lo = first + 2  # skip the network address and the reserved first host address
        self._hi = last - 1  # skip the broadcast address
        self._used: set[int] = set()
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return len(self._used)

    def allocate(self, ip: str | None = None) -> str:
        """Take `ip`, or a free random address when None."""
        if ip is not None:
            try:
                addr = int(ipaddress.IPv4Address(ip))
            except ValueError as e:
                raise AllocationError(f"failed to allocate IP {ip}: {e}") from None
            if not self._lo - 1 <= addr <= self._hi:
                raise AllocationError(
                    f"failed to allocate IP {ip}: provided IP ({ip}) is not in the valid range. "
                    f"The range of valid IPs is {self.cidr}"
                )
            if addr in self._used or addr == self._lo - 1:
                raise AllocationError(
                    f"failed to allocate IP {ip}: provided IP is already allocated"
                )
            self._used.add(addr)
            return ip
        size = self._hi - self._lo + 1
        if len(self._used) >= size:
            raise AllocationError("failed to allocate IP: range is full")
        start = self._rng.randrange(size)
        for i in range(size):
            addr = self._lo + (start + i) % size
            if addr not in self._used:
                self._used.add(addr)
                return str(ipaddress.IPv4Address(addr))
        raise AllocationError("failed to allocate IP: range is full")  # pragma: no cover

    def reserve_existing(self, ip: str) -> None:
        """Mark an address of a stored Service as used (at start; no checks beyond parsing)."""
        with contextlib.suppress(ValueError):
            self._used.add(int(ipaddress.IPv4Address(ip)))

    def release(self, ip: str) -> None:
        with contextlib.suppress(ValueError):
            self._used.discard(int(ipaddress.IPv4Address(ip)))

    def is_allocated(self, ip: str) -> bool:
        try:
            return int(ipaddress.IPv4Address(ip)) in self._used
        except ValueError:
            return False


def parse_port_range(text: str) -> tuple[int, int]:
    """`30000-32767` (or a single port) into (first, last)."""
    lo, _, hi = text.partition("-")
    first, last = int(lo), int(hi or lo)
    if not 0 < first <= last <= 65535:
        raise ValueError(f"invalid port range {text!r}")
    return first, last


class NodePortAllocator:
    def __init__(self, port_range: str, *, rng: random.Random | None = None) -> None:
        self.first, self.last = parse_port_range(port_range)
        self.range_text = f"{self.first}-{self.last}"
        self._used: set[int] = set()
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return len(self._used)

    def allocate(self, port: int | None = None) -> int:
        if port is not None:
            if not self.first <= port <= self.last:
                raise AllocationError(
                    "provided port is not in the valid range. "
                    f"The range of valid ports is {self.range_text}"
                )
            if port in self._used:
                raise AllocationError("provided port is already allocated")
            self._used.add(port)
            return port
        size = self.last - self.first + 1
        if len(self._used) >= size:
            raise AllocationError("range is full")
        start = self._rng.randrange(size)
        for i in range(size):
            p = self.first + (start + i) % size
            if p not in self._used:
                self._used.add(p)
                return p
        raise AllocationError("range is full")  # pragma: no cover

    def reserve_existing(self, port: int) -> None:
        self._used.add(port)

    def release(self, port: int) -> None:
        self._used.discard(port)

    def is_allocated(self, port: int) -> bool:
        return port in self._used
