"""conntrack.py: state names, timeouts, and a GC pass that re-checks before it deletes."""

from __future__ import annotations

from dataclasses import replace

from weir_node_loader import conntrack
from weir_node_loader.conntrack import CtState, Timeouts
from weir_node_loader.datapath_maps import CtRow
from weir_node_loader.maps import CtFlag, Direction

S = 1_000_000_000
NOW = 100_000 * S


def row(protocol: int = 6, flags: int = 0, idle: float = 0.0, sport: int = 1000) -> CtRow:
    return CtRow(
        saddr="10.244.1.2", daddr="10.244.1.3", sport=sport, dport=80, protocol=protocol,
        direction=Direction.FROM_POD, created_ns=NOW - int(3600 * S),
        last_seen_ns=NOW - int(idle * S), cookie=0, remote_identity=300, flags=flags,
    )  # fmt: skip


def test_states_from_flags() -> None:
    assert conntrack.state_of(6, CtFlag.SYN) == CtState.SYN_SENT
    assert conntrack.state_of(6, CtFlag.SYN | CtFlag.REPLIED) == CtState.ESTABLISHED
    assert conntrack.state_of(6, CtFlag.REPLIED | CtFlag.FIN_FWD) == CtState.CLOSING
    assert conntrack.state_of(6, CtFlag.FIN_FWD | CtFlag.FIN_REV) == CtState.CLOSED
    assert conntrack.state_of(6, CtFlag.REPLIED | CtFlag.RST) == CtState.CLOSED
    assert conntrack.state_of(17, 0) == CtState.NEW
    assert conntrack.state_of(1, CtFlag.REPLIED) == CtState.REPLIED


def test_each_state_expires_after_its_own_timeout() -> None:
    t = Timeouts(tcp_established=600, tcp_opening=60, tcp_closing=10, other=30)
    est = CtFlag.SYN | CtFlag.REPLIED
    assert not conntrack.expired(row(flags=est, idle=599), NOW, t)
    assert conntrack.expired(row(flags=est, idle=601), NOW, t)
    assert conntrack.expired(row(flags=CtFlag.SYN, idle=61), NOW, t)
    assert not conntrack.expired(row(flags=CtFlag.SYN, idle=59), NOW, t)
    assert conntrack.expired(row(flags=est | CtFlag.RST, idle=11), NOW, t)
    assert conntrack.expired(row(protocol=17, idle=31), NOW, t)
    assert not conntrack.expired(row(protocol=17, flags=CtFlag.REPLIED, idle=29), NOW, t)


def test_a_sweep_deletes_expired_entries_only_and_rechecks_first() -> None:
    live = row(flags=CtFlag.SYN | CtFlag.REPLIED, idle=5, sport=1)
    old_udp = row(protocol=17, idle=120, sport=2)
    closed = row(flags=CtFlag.RST, idle=30, sport=3)
    refreshed = row(protocol=17, idle=120, sport=4)  # a packet arrives between read and delete
    table = {r.sport: r for r in (live, old_udp, closed, refreshed)}

    def recheck(r: CtRow) -> CtRow | None:
        if r.sport == 4:
            return replace(r, last_seen_ns=NOW)
        return table.get(r.sport)

    def delete(r: CtRow) -> bool:
        return table.pop(r.sport, None) is not None

    report = conntrack.sweep(list(table.values()), NOW, Timeouts(), recheck=recheck, delete=delete)
    assert sorted(table) == [1, 4]
    assert (report.scanned, report.deleted, report.refreshed) == (4, 2, 1)
    assert report.by_state == {("udp", "new"): 1, ("tcp", "closed"): 1}
