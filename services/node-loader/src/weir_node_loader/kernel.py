"""The one seam between node-loader's logic and the kernel: the `Kernel` protocol.

Everything node-loader does to the node — map entries, tc filters on pod veths, routes, the
ipcache, policy and conntrack maps — goes through these few calls, so the registry, the policy
sync and reconciliation above them are plain code tested with an in-memory fake, and the real
implementation (linux.py) stays a thin translation to bpf(2) and netlink. The calls block; the
service runs them on one dedicated thread.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from weir.models import EndpointRecord

from weir_node_loader import policy
from weir_node_loader.conntrack import Sweep, Timeouts
from weir_node_loader.ipcache import Diff, Tables
from weir_node_loader.maps import Counters, Direction, Settings


class HookOutcome(StrEnum):
    """What attaching one hook took."""

    ADOPTED = "adopted"  # the current program was already attached: nothing changed
    ADDED = "added"
    REPLACED = "replaced"  # another build (or maps) was attached: swapped atomically


class KernelError(Exception):
    """A kernel operation failed. `reason` is a short label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Realized:
    """What the pinned maps hold for one host veth.

    `record` is None when the entries are half-written or unreadable; `complete` is True only
    when every entry of the endpoint (info, meta, both counters) exists.
    """

    ifindex: int
    record: EndpointRecord | None
    complete: bool


class Kernel(Protocol):
    def links(self, only: Collection[int] | None = None) -> dict[int, str]:
        """The node namespace's links, ifindex -> name: all of them, or just those of `only`
        that exist (a registration asks about one or two, not the node's hundreds)."""
        ...

    def realized(self) -> dict[int, Realized]:
        """Every endpoint the pinned maps hold, by host veth ifindex."""
        ...

    def hooked(self) -> set[int]:
        """The links that carry a Weir tc filter."""
        ...

    def write_endpoint(self, record: EndpointRecord) -> bool:
        """Make the maps hold `record` (counters are created, never reset). True if changed."""
        ...

    def attach(self, ifindex: int) -> dict[Direction, HookOutcome]:
        """Make both hooks of the link run the current programs (adopt, add or replace)."""
        ...

    def remove_endpoint(self, ifindex: int) -> bool:
        """Detach Weir's filters (if the link exists) and delete the map entries of `ifindex`,
        its policy included. True when anything was removed."""
        ...

    def counters(self, ifindex: int | None = None) -> dict[int, Counters]:
        """Every endpoint's counters (or only `ifindex`'s), by host veth ifindex."""
        ...

    def routes(self) -> dict[str, str]:
        """Weir's routes in the node's main table: destination CIDR -> gateway."""
        ...

    def set_route(self, cidr: str, gateway: str) -> None:
        """Add or replace Weir's route to `cidr`."""
        ...

    def delete_route(self, cidr: str) -> None: ...


class PolicyKernel(Protocol):
    """The policy side of the maps: ipcache, per-endpoint policy, conntrack, settings."""

    def ipcache(self) -> Tables:
        """Both ipcache tables as the maps hold them."""
        ...

    def write_ipcache(self, main: Diff, cidr: Diff) -> int:
        """Apply the diffs (writes first, then deletes); the number of map operations."""
        ...

    def policies(self, reread: bool = False) -> dict[int, policy.Realized]:
        """Every endpoint's policy the maps hold, by ifindex (`reread`: walk the maps again)."""
        ...

    def flip_policy(self, ifindex: int, flip: policy.Flip) -> None:
        """Write the inactive slot and switch the endpoint's config to it."""
        ...

    def finish_policy(self, ifindex: int, flip: policy.Flip) -> None:
        """Delete the old slot's entries (once no program can still be reading them)."""
        ...

    def remove_policy(self, ifindex: int) -> bool:
        """Delete an endpoint's config and entries; True when there were any."""
        ...

    def ct_sweep(self, now_ns: int, timeouts: Timeouts) -> Sweep:
        """Delete the conntrack entries that have expired at `now_ns` (CLOCK_MONOTONIC)."""
        ...

    def write_settings(self, settings: Settings) -> bool:
        """Write the datapath's run-time settings; True when they changed."""
        ...
