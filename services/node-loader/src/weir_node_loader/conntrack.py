"""Conntrack entries as people read them, and when they expire. No I/O.

The datapath keeps only what timeouts need (bpf/lib/conntrack.h): flags for SYN, reply, FIN
each way and RST, and `last_seen_ns` (CLOCK_MONOTONIC, refreshed at most once a second). Here
those become a state name and a verdict for the garbage collector, with per-protocol, per-state
timeouts (Cilium's defaults: TCP established 6 h, opening 60 s, closing 10 s, anything else
60 s since its last packet).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from weir_node_loader.datapath_maps import CtRow
from weir_node_loader.maps import CtFlag

TCP = 6
UDP = 17
ICMP = 1
SCTP = 132
PROTOCOL_NAMES = {TCP: "tcp", UDP: "udp", ICMP: "icmp", SCTP: "sctp"}


class CtState(StrEnum):
    SYN_SENT = "syn-sent"  # TCP, opened, no reply yet
    ESTABLISHED = "established"  # TCP with a reply seen
    CLOSING = "closing"  # TCP: FIN one way
    CLOSED = "closed"  # TCP: FIN both ways, or RST
    NEW = "new"  # other protocols, no reply yet
    REPLIED = "replied"  # other protocols with a reply seen


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds since the last packet after which an entry is removed."""

    tcp_established: float = 21600.0
    tcp_opening: float = 60.0
    tcp_closing: float = 10.0
    other: float = 60.0

    def of(self, state: CtState) -> float:
        return {
            CtState.SYN_SENT: self.tcp_opening,
            CtState.ESTABLISHED: self.tcp_established,
            CtState.CLOSING: self.tcp_established,
            CtState.CLOSED: self.tcp_closing,
        }.get(state, self.other)


def state_of(protocol: int, flags: int) -> CtState:
    if protocol != TCP:
        return CtState.REPLIED if flags & CtFlag.REPLIED else CtState.NEW
    if flags & CtFlag.RST or (flags & CtFlag.FIN_FWD and flags & CtFlag.FIN_REV):
        return CtState.CLOSED
    if flags & (CtFlag.FIN_FWD | CtFlag.FIN_REV):
        return CtState.CLOSING
    return CtState.ESTABLISHED if flags & CtFlag.REPLIED else CtState.SYN_SENT


def expired(row: CtRow, now_ns: int, timeouts: Timeouts) -> bool:
    """Whether `row` has outlived its state's timeout at `now_ns` (CLOCK_MONOTONIC)."""
    idle = (now_ns - row.last_seen_ns) / 1e9
    return idle > timeouts.of(state_of(row.protocol, row.flags))


def protocol_name(protocol: int) -> str:
    return PROTOCOL_NAMES.get(protocol, str(protocol))


@dataclass
class Sweep:
    """What one GC pass did."""

    scanned: int = 0
    deleted: int = 0
    refreshed: int = 0  # expired when read, refreshed by a packet before the delete
    by_state: dict[tuple[str, str], int] = field(default_factory=dict)  # (protocol, state)


def sweep(
    rows: Iterable[CtRow],
    now_ns: int,
    timeouts: Timeouts,
    *,
    recheck: Callable[[CtRow], CtRow | None],
    delete: Callable[[CtRow], bool],
) -> Sweep:
    """One GC pass over `rows` (a batch read): an expired one is read again (`recheck`) and
    deleted only if it is still expired — a packet may have refreshed it since the read. (What
    remains is a window of one syscall: a packet between the re-read and the delete loses its
    entry and its flow meets policy again, as after an LRU eviction.)"""
    report = Sweep()
    for row in rows:
        report.scanned += 1
        if not expired(row, now_ns, timeouts):
            continue
        fresh = recheck(row)
        if fresh is None:
            continue
        if not expired(fresh, now_ns, timeouts):
            report.refreshed += 1
            continue
        if delete(fresh):
            report.deleted += 1
            key = (protocol_name(fresh.protocol), state_of(fresh.protocol, fresh.flags).value)
            report.by_state[key] = report.by_state.get(key, 0) + 1
    return report
