"""The real `Kernel`: pinned maps through bpf(2), tc and routes through pyroute2 netlink.

It works on the node's network namespace from wherever node-loader runs: in a hostNetwork pod
that is its own namespace; in the local cluster node-loader stays in the root namespace — BCC
and bpffs need the root mount namespace, which `ip netns exec` would replace — and talks to the
node's namespace through a netlink socket created there. pyroute2's `NetNS` would do that by
forking a helper and SIGTERM-ing it afterwards; a child forked from an asyncio process shares
the event loop's signal wakeup fd, so a signal reaching the helper was read by node-loader's
loop as its own and stopped it (seen here, intermittently). The kernel thread therefore enters
the namespace with setns(2) just for the socket() call (setns of a network namespace affects
only the calling thread) and returns. Every method runs on node-loader's one kernel thread
(pyroute2's synchronous objects are bound to the thread that made them).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from weir import netns as weir_netns
from weir.models import EndpointRecord

from weir_node_loader import bpfsys, conntrack, policy, tc
from weir_node_loader.conntrack import Sweep, Timeouts
from weir_node_loader.datapath_maps import DatapathMaps
from weir_node_loader.endpoint_maps import EndpointMaps
from weir_node_loader.ipcache import Diff, Tables
from weir_node_loader.kernel import HookOutcome, KernelError, Realized
from weir_node_loader.maps import Counters, Direction, EventCounter, Reason, Settings
from weir_node_loader.program import LoadedProg, Program

log = logging.getLogger("weir.node_loader.linux")

# rtm_protocol of every route Weir installs ("W"; unassigned in iproute2's rt_protos), so that
# reconciliation lists, replaces and deletes only its own routes.
ROUTE_PROTOCOL = 87
MAIN_TABLE = 254


def netns_path(netns: str) -> Path | None:
    """None for node-loader's own namespace, else the namespace file (a name or a path)."""
    return weir_netns.path_of(netns) if netns else None


def open_netlink(netns: str) -> Any:
    """An IPRoute whose socket lives in the node's network namespace (never created here)."""
    path = netns_path(netns)
    if path is None:
        return IPRoute()
    try:
        with weir_netns.entered(path):
            return IPRoute()
    except FileNotFoundError:
        raise KernelError("netns", f"network namespace {netns!r} not found ({path})") from None


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Kernel failures as KernelError with a reason label."""
    try:
        yield
    except tc.LinkGone as e:
        raise KernelError("link_gone", f"{what}: the link is gone ({e})") from None
    except NetlinkError as e:
        reason = "link_gone" if e.code == errno.ENODEV else "netlink"
        raise KernelError(reason, f"{what}: {e}") from None
    except bpfsys.BpfError as e:
        raise KernelError("bpf", f"{what}: {e}") from None


class LinuxKernel:
    def __init__(
        self,
        *,
        ipr: Any,
        program: Program,
        maps: EndpointMaps,
        datapath: DatapathMaps,
        node: str,
    ) -> None:
        self._ipr = ipr
        self._program = program
        self._maps = maps
        self._dp = datapath
        self._node = node
        self._prog_cache: dict[int, tuple[str, frozenset[int]]] = {}

    @classmethod
    def open(cls, *, netns: str, pin_dir: Path, program: Program, node: str) -> LinuxKernel:
        endpoint_maps = EndpointMaps.open(pin_dir)
        try:
            datapath = DatapathMaps.open(pin_dir)
        except BaseException:
            endpoint_maps.close()
            raise
        try:
            pinned = endpoint_maps.map_ids | datapath.map_ids
            for prog in program.progs.values():
                if not prog.map_ids <= pinned:
                    raise KernelError(
                        "pins", f"{prog.name} uses maps other than the pins in {pin_dir}"
                    )
            ipr = open_netlink(netns)
        except BaseException:
            endpoint_maps.close()
            datapath.close()
            raise
        return cls(ipr=ipr, program=program, maps=endpoint_maps, datapath=datapath, node=node)

    @property
    def program(self) -> Program:
        return self._program

    def close(self) -> None:
        self._ipr.close()
        self._maps.close()
        self._dp.close()

    # --- links and endpoints ------------------------------------------------------------------

    def links(self, only: Collection[int] | None = None) -> dict[int, str]:
        with _translated("list links"):
            if only is None:
                msgs = self._ipr.get_links()
            else:
                msgs = []
                for ifindex in only:
                    try:
                        msgs += self._ipr.get_links(ifindex)
                    except NetlinkError as e:
                        if e.code != errno.ENODEV:
                            raise
            return {msg["index"]: str(msg.get_attr("IFLA_IFNAME")) for msg in msgs}

    def realized(self) -> dict[int, Realized]:
        with _translated("read endpoint maps"):
            return self._maps.realized(self._node)

    def counters(self, ifindex: int | None = None) -> dict[int, Counters]:
        with _translated("read counters"):
            return self._maps.counters(ifindex)

    def write_endpoint(self, record: EndpointRecord) -> bool:
        with _translated(f"write endpoint {record.container_id}"):
            return self._maps.write(record)

    def attach(self, ifindex: int) -> dict[Direction, HookOutcome]:
        outcomes: dict[Direction, HookOutcome] = {}
        with _translated(f"attach to ifindex {ifindex}"):
            self._ipr.get_links(ifindex)  # ENODEV when the veth is gone
            tc.ensure_clsact(self._ipr, ifindex)
            for direction, parent in tc.PARENTS.items():
                prog = self._program.progs[direction]
                found = tc.weir_filter(self._ipr, ifindex, parent)
                if found is None:
                    outcome = HookOutcome.ADDED
                elif not found.is_weir:
                    raise KernelError(
                        "conflict",
                        f"ifindex {ifindex}: filter {found.name!r} holds tc prio "
                        f"{tc.FILTER_PRIO} handle {tc.FILTER_HANDLE}; not replacing it",
                    )
                elif self._is_current(found.prog_id, prog):
                    outcomes[direction] = HookOutcome.ADOPTED
                    continue
                else:
                    outcome = HookOutcome.REPLACED
                tc.set_filter(
                    self._ipr,
                    ifindex,
                    parent,
                    fd=prog.fd,
                    name=prog.name,
                    replace=outcome == HookOutcome.REPLACED,
                )
                outcomes[direction] = outcome
        return outcomes

    def _is_current(self, prog_id: int, prog: LoadedProg) -> bool:
        """Whether the attached program is this build on these maps: same instructions (tag)
        and the same map ids (a tag alone would match a program left on deleted pins)."""
        if prog_id == prog.id:
            return True
        if prog_id not in self._prog_cache:
            try:
                info = bpfsys.prog_info_by_id(prog_id)
            except bpfsys.BpfError:
                return False
            self._prog_cache[prog_id] = (info.tag, frozenset(info.map_ids))
        tag, map_ids = self._prog_cache[prog_id]
        return tag == prog.tag and map_ids == prog.map_ids

    def hooked(self) -> set[int]:
        found: set[int] = set()
        with _translated("list tc filters"):
            for ifindex in self.links():
                try:
                    filters = [tc.weir_filter(self._ipr, ifindex, p) for p in tc.PARENTS.values()]
                except tc.LinkGone:
                    continue  # vanished meanwhile
                if any(f is not None and f.is_weir for f in filters):
                    found.add(ifindex)
        return found

    def remove_endpoint(self, ifindex: int) -> bool:
        removed = False
        with _translated(f"remove endpoint on ifindex {ifindex}"):
            if ifindex in self.links((ifindex,)):
                removed = self._detach(ifindex)
            removed |= self._maps.remove(ifindex)
            removed |= self._dp.remove_policy(ifindex)
        return removed

    def _detach(self, ifindex: int) -> bool:
        try:
            removed = False
            for parent in tc.PARENTS.values():
                found = tc.weir_filter(self._ipr, ifindex, parent)
                if found is not None and found.is_weir:
                    tc.delete_filter(self._ipr, ifindex, parent)
                    removed = True
            others = any(tc.bpf_filters(self._ipr, ifindex, p) for p in tc.PARENTS.values())
            if removed and not others and tc.has_clsact(self._ipr, ifindex):
                tc.delete_clsact(self._ipr, ifindex)  # Weir added it; nobody else uses it
            return removed
        except tc.LinkGone:
            return False  # the veth went away meanwhile, and its filters with it

    # --- ipcache, policy, conntrack, settings ------------------------------------------------

    def ipcache(self) -> Tables:
        with _translated("read ipcache"):
            return self._dp.ipcache()

    def write_ipcache(self, main: Diff, cidr: Diff) -> int:
        with _translated("write ipcache"):
            return self._dp.write_ipcache(main, cidr)

    def policies(self, reread: bool = False) -> dict[int, policy.Realized]:
        with _translated("read policy maps"):
            return self._dp.policies(reread=reread)

    def flip_policy(self, ifindex: int, flip: policy.Flip) -> None:
        with _translated(f"write the policy of ifindex {ifindex}"):
            self._dp.flip(ifindex, flip)

    def finish_policy(self, ifindex: int, flip: policy.Flip) -> None:
        with _translated(f"clear the old policy slot of ifindex {ifindex}"):
            self._dp.finish(ifindex, flip)

    def remove_policy(self, ifindex: int) -> bool:
        with _translated(f"remove the policy of ifindex {ifindex}"):
            return self._dp.remove_policy(ifindex)

    def ct_sweep(self, now_ns: int, timeouts: Timeouts) -> Sweep:
        with _translated("conntrack GC"):
            return conntrack.sweep(
                self._dp.ct_rows(),
                now_ns,
                timeouts,
                recheck=self._dp.ct_get,
                delete=self._dp.ct_delete,
            )

    def write_settings(self, settings: Settings) -> bool:
        with _translated("write settings"):
            return self._dp.write_settings(settings)

    def datapath_stats(
        self,
    ) -> tuple[dict[tuple[Reason, Direction], tuple[int, int]], dict[EventCounter, int]]:
        """Per-reason counters and event counters (read-only; safe from any thread)."""
        with _translated("read datapath counters"):
            return self._dp.reason_stats(), self._dp.event_stats()

    # --- routes -------------------------------------------------------------------------------

    def _main_routes(self) -> list[Any]:
        return list(self._ipr.get_routes(family=socket.AF_INET, table=MAIN_TABLE))

    @staticmethod
    def _dst(msg: Any) -> str:
        return f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}"

    def routes(self) -> dict[str, str]:
        with _translated("list routes"):
            return {
                self._dst(r): str(r.get_attr("RTA_GATEWAY") or "")
                for r in self._main_routes()
                if r["proto"] == ROUTE_PROTOCOL
            }

    def set_route(self, cidr: str, gateway: str) -> None:
        with _translated(f"route {cidr} via {gateway}"):
            for r in self._main_routes():
                if self._dst(r) == cidr and r["proto"] != ROUTE_PROTOCOL:
                    raise KernelError(
                        "conflict", f"route {cidr} exists with protocol {r['proto']}: not Weir's"
                    )
            self._ipr.route(
                "replace", dst=cidr, gateway=gateway, proto=ROUTE_PROTOCOL, table=MAIN_TABLE
            )

    def delete_route(self, cidr: str) -> None:
        with _translated(f"delete route {cidr}"):
            try:
                # The kernel matches the protocol too: only Weir's route can go.
                self._ipr.route("del", dst=cidr, proto=ROUTE_PROTOCOL, table=MAIN_TABLE)
            except NetlinkError as e:
                if e.code != errno.ESRCH:
                    raise
