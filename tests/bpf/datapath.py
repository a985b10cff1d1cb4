"""A loaded lxc.c with its maps, for policy tests: seed maps, run packets, read what happened.

Maps are seeded through node-loader's own user-space code (the ipcache diff, the policy compile
and slot flip), so the tests exercise the layout both sides agree on. Packets run through
BPF_PROG_TEST_RUN arrive on lo (ifindex 1): the endpoint under test is registered there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from weir.identity import Reserved
from weir.models import (
    DirectionPolicy,
    EndpointPolicy,
    IPCacheEntry,
    IPCacheKind,
    PolicyEntry,
    Verdict,
)
from weir_node_loader import bpfsys, ipcache, maps, policy
from weir_node_loader.datapath_maps import CtRow, DatapathMaps
from weir_node_loader.endpoint_maps import EndpointMaps
from weir_node_loader.flows import Event
from weir_node_loader.maps import Direction, Reason
from weir_node_loader.program import Program

from tests.unit.node_loader.fakes import record

TC_ACT_OK = 0
TC_ACT_SHOT = 2
LO = 1
NODE = "node-1"
POD_IP = "10.244.1.2"  # the endpoint under test
POD_ID = 1000  # its identity
FROM, TO = Direction.FROM_POD, Direction.TO_POD
TCP, UDP, ICMP, SCTP = 6, 17, 1, 132


def allow(identity: int, protocol: int = 0, port: int = 0, end_port: int = 0,
          cookie: int = 0) -> PolicyEntry:  # fmt: skip
    return PolicyEntry(
        identity=identity, protocol=protocol, port=port, end_port=end_port, cookie=cookie
    )


def deny(identity: int, protocol: int = 0, port: int = 0, cookie: int = 0) -> PolicyEntry:
    return PolicyEntry(
        identity=identity, protocol=protocol, port=port, verdict=Verdict.DENY, cookie=cookie
    )


def endpoint_policy(
    *,
    ingress: Iterable[PolicyEntry] | None = None,
    egress: Iterable[PolicyEntry] | None = None,
    ingress_cookie: int = 0,
    egress_cookie: int = 0,
    ipblock_matches_pods: bool = True,
    cookies: dict[int, str] | None = None,
) -> EndpointPolicy:
    """None: that direction is not enforced; a list (even empty): enforced, those entries."""
    return EndpointPolicy(
        node=NODE,
        pod_namespace="default",
        pod_name="pod-c1",
        pod_uid="uid-1",
        identity=POD_ID,
        ingress=DirectionPolicy(
            enforced=ingress is not None,
            default_cookie=ingress_cookie,
            entries=tuple(ingress or ()),
        ),
        egress=DirectionPolicy(
            enforced=egress is not None,
            default_cookie=egress_cookie,
            entries=tuple(egress or ()),
        ),
        ipblock_matches_pods=ipblock_matches_pods,
        cookies=cookies or {},
    )


def pod(prefix: str, identity: int, name: str = "peer") -> IPCacheEntry:
    return IPCacheEntry(
        prefix=prefix, identity=identity, kind=IPCacheKind.POD, pod_namespace="default",
        pod_name=name, node=NODE,
    )  # fmt: skip


def cidr(prefix: str, identity: int) -> IPCacheEntry:
    return IPCacheEntry(prefix=prefix, identity=identity, kind=IPCacheKind.CIDR)


def world() -> IPCacheEntry:
    return IPCacheEntry(prefix="0.0.0.0/0", identity=Reserved.WORLD, kind=IPCacheKind.WORLD)


class Datapath:
    def __init__(self, loaded: Program, endpoints: EndpointMaps, dp: DatapathMaps) -> None:
        self.loaded = loaded
        self.endpoints = endpoints
        self.dp = dp
        self._events: list[bytes] = []
        self._ring: Any = None

    # --- seeding ------------------------------------------------------------------------------

    def register(self, ifindex: int = LO, ip: str = POD_IP) -> None:
        self.endpoints.write(record(ifindex=ifindex, ip=ip, host_ifname="lo"))

    def settings(self, per_sec: int = 1000, burst: int = 1000, flags: int = 0) -> None:
        self.dp.write_settings(
            maps.Settings(events_per_sec=per_sec, events_burst=burst, flags=flags)
        )

    def ipcache(self, *entries: IPCacheEntry, host: Iterable[str] = ()) -> None:
        tables, problems = ipcache.desired(entries, NODE, host)
        assert not problems, problems
        held = self.dp.ipcache()
        self.dp.write_ipcache(
            ipcache.diff(tables.main, held.main), ipcache.diff(tables.cidr, held.cidr)
        )

    def policy(self, pol: EndpointPolicy, ifindex: int = LO) -> policy.Flip | None:
        """Write `pol` for the endpoint the way node-loader does: a whole slot flip."""
        flip = policy.plan(policy.compile_policy(pol), self.dp.policies().get(ifindex))
        if flip is not None:
            self.dp.flip(ifindex, flip)
            self.dp.finish(ifindex, flip)
        return flip

    # --- running ------------------------------------------------------------------------------

    def run(self, direction: Direction, frame: bytes, repeat: int = 1) -> int:
        return bpfsys.prog_test_run(self.loaded.progs[direction].fd, frame, repeat=repeat).retval

    def duration(self, direction: Direction, frame: bytes, repeat: int) -> int:
        return bpfsys.prog_test_run(
            self.loaded.progs[direction].fd, frame, repeat=repeat
        ).duration_ns

    # --- what happened ------------------------------------------------------------------------

    def events(self) -> list[Event]:
        """The verdict events sent since the last call."""
        if self._ring is None:
            self._ring = self.loaded.bpf[maps.EVENTS.name.encode()]

            def keep(ctx: Any, data: Any, size: int) -> int:
                import ctypes as ct

                self._events.append(ct.string_at(data, size))
                return 0

            self._ring.open_ring_buffer(keep)
        self.loaded.bpf.ring_buffer_consume()
        out, self._events = [Event.decode(raw) for raw in self._events], []
        return out

    def counted(self, reason: Reason, direction: Direction) -> int:
        return self.dp.reason_stats().get((reason, direction), (0, 0))[0]

    def event_counts(self) -> dict[maps.EventCounter, int]:
        return self.dp.event_stats()

    def ct(self) -> list[CtRow]:
        return self.dp.ct_rows()
