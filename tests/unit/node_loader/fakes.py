"""In-memory stand-ins for node-loader's kernel adapter and KV store, for the pure-core tests."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from weir.endpoint_api import EndpointRequest
from weir.models import EndpointRecord
from weir_node_loader import conntrack, policy
from weir_node_loader.conntrack import Sweep, Timeouts
from weir_node_loader.datapath_maps import CtRow
from weir_node_loader.ipcache import Diff, Table, Tables
from weir_node_loader.kernel import HookOutcome, KernelError, Realized
from weir_node_loader.maps import Counter, Counters, Direction, Settings

NODE = "node-1"


def request(
    cid: str = "c1", ifindex: int = 10, ip: str = "10.244.1.2", **over: object
) -> EndpointRequest:
    values: dict[str, object] = {
        "container_id": cid,
        "pod_namespace": "default",
        "pod_name": f"pod-{cid}",
        "ip": ip,
        "mac": "0a:58:0a:f4:01:02",
        "host_ifname": f"wr{cid}",
        "host_ifindex": ifindex,
        "host_mac": "ee:ee:ee:ee:ee:01",
        "netns": f"/run/netns/pod-{cid}",
        "ifname": "eth0",
    }
    values.update(over)
    return EndpointRequest(**values)  # type: ignore[arg-type]


def record(
    cid: str = "c1", ifindex: int = 10, ip: str = "10.244.1.2", **over: object
) -> EndpointRecord:
    r = request(cid, ifindex, ip)
    rec = EndpointRecord(
        node=NODE,
        container_id=r.container_id,
        pod_namespace=r.pod_namespace,
        pod_name=r.pod_name,
        ip=r.ip,
        mac=r.mac,
        host_ifname=r.host_ifname,
        host_ifindex=r.host_ifindex,
        host_mac=r.host_mac,
        netns=r.netns,
        ifname=r.ifname,
    )
    return replace(rec, **over)  # type: ignore[arg-type]


class FakeKernel:
    """Links, endpoint map entries, hooks and routes as dicts; `fail` injects errors."""

    def __init__(self) -> None:
        self.link_table: dict[int, str] = {1: "lo", 2: "eth0"}
        self.entries: dict[int, EndpointRecord] = {}
        self.half: set[int] = set()  # ifindexes with half-written entries (no record)
        self.stats: dict[int, Counters] = {}
        self.hooks: dict[int, dict[Direction, str]] = {}  # "current" or "old" per direction
        self.route_table: dict[str, str] = {}
        self.fail: dict[str, KernelError] = {}
        self.calls: list[str] = []
        # the policy side
        self.ipcache_main: Table = {}
        self.ipcache_cidr: Table = {}
        self.policy: dict[int, policy.Realized] = {}
        self.flip_log: list[tuple[int, str, int]] = []  # (ifindex, "flip"|"finish", slot)
        self.ct: list[CtRow] = []
        self.settings: Settings | None = None

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def add_veth(self, ifindex: int, name: str) -> None:
        self.link_table[ifindex] = name

    def del_veth(self, ifindex: int) -> None:
        self.link_table.pop(ifindex, None)
        self.hooks.pop(ifindex, None)  # tc state goes with the link

    # --- Kernel -------------------------------------------------------------------------------

    def links(self, only: Collection[int] | None = None) -> dict[int, str]:
        self._enter("links")
        if only is None:
            return dict(self.link_table)
        return {i: n for i, n in self.link_table.items() if i in only}

    def realized(self) -> dict[int, Realized]:
        self._enter("realized")
        out = {i: Realized(i, r, i in self.stats) for i, r in self.entries.items()}
        out.update({i: Realized(i, None, False) for i in self.half})
        return out

    def hooked(self) -> set[int]:
        self._enter("hooked")
        return {i for i, h in self.hooks.items() if h}

    def write_endpoint(self, record: EndpointRecord) -> bool:
        self._enter("write_endpoint")
        i = record.host_ifindex
        changed = self.entries.get(i) != record or i not in self.stats
        held = self.entries.get(i)
        if held is not None and held.container_id != record.container_id:
            self.stats.pop(i, None)
        self.entries[i] = record
        self.half.discard(i)
        self.stats.setdefault(i, Counters())
        return changed

    def attach(self, ifindex: int) -> dict[Direction, HookOutcome]:
        self._enter("attach")
        if ifindex not in self.link_table:
            raise KernelError("link_gone", f"ifindex {ifindex} is gone")
        hooks = self.hooks.setdefault(ifindex, {})
        out = {}
        for d in Direction:
            state = hooks.get(d)
            out[d] = {
                None: HookOutcome.ADDED,
                "old": HookOutcome.REPLACED,
                "current": HookOutcome.ADOPTED,
            }[state]
            hooks[d] = "current"
        return out

    def remove_endpoint(self, ifindex: int) -> bool:
        self._enter("remove_endpoint")
        removed = bool(self.hooks.pop(ifindex, None)) if ifindex in self.link_table else False
        removed |= self.entries.pop(ifindex, None) is not None
        removed |= self.stats.pop(ifindex, None) is not None
        removed |= self.policy.pop(ifindex, None) is not None
        if ifindex in self.half:
            self.half.discard(ifindex)
            removed = True
        return removed

    def counters(self, ifindex: int | None = None) -> dict[int, Counters]:
        self._enter("counters")
        if ifindex is not None:
            return {ifindex: self.stats[ifindex]} if ifindex in self.stats else {}
        return dict(self.stats)

    def routes(self) -> dict[str, str]:
        self._enter("routes")
        return dict(self.route_table)

    def set_route(self, cidr: str, gateway: str) -> None:
        self._enter("set_route")
        self.route_table[cidr] = gateway

    def delete_route(self, cidr: str) -> None:
        self._enter("delete_route")
        self.route_table.pop(cidr, None)

    # --- PolicyKernel -------------------------------------------------------------------------

    def ipcache(self) -> Tables:
        self._enter("ipcache")
        return Tables(dict(self.ipcache_main), dict(self.ipcache_cidr))

    def write_ipcache(self, main: Diff, cidr: Diff) -> int:
        self._enter("write_ipcache")
        for table, d in ((self.ipcache_main, main), (self.ipcache_cidr, cidr)):
            table.update(d.put)
            for prefix in d.delete:
                table.pop(prefix, None)
        return len(main.put) + len(main.delete) + len(cidr.put) + len(cidr.delete)

    def policies(self, reread: bool = False) -> dict[int, policy.Realized]:
        self._enter("policies")
        return dict(self.policy)

    def flip_policy(self, ifindex: int, flip: policy.Flip) -> None:
        self._enter("flip_policy")
        held = self.policy.get(ifindex)
        slots = {s: dict(r) for s, r in (held.slots if held else {}).items()}
        target = slots.setdefault(flip.slot, {})
        for row in flip.delete_first:
            target.pop(row, None)
        target.update(flip.put)
        if flip.write_config or held is None:
            self.policy[ifindex] = policy.Realized(flip.config, flip.slot, slots)
        else:
            self.policy[ifindex] = policy.Realized(held.config, held.slot, slots)
        self.flip_log.append((ifindex, "flip", flip.slot))

    def finish_policy(self, ifindex: int, flip: policy.Flip) -> None:
        self._enter("finish_policy")
        held = self.policy[ifindex]
        slots = {s: dict(r) for s, r in held.slots.items()}
        for row in flip.delete_after:
            slots.get(1 - flip.slot, {}).pop(row, None)
        self.policy[ifindex] = policy.Realized(held.config, held.slot, slots)
        self.flip_log.append((ifindex, "finish", flip.slot))

    def remove_policy(self, ifindex: int) -> bool:
        self._enter("remove_policy")
        return self.policy.pop(ifindex, None) is not None

    def ct_sweep(self, now_ns: int, timeouts: Timeouts) -> Sweep:
        self._enter("ct_sweep")

        def recheck(row: CtRow) -> CtRow | None:
            return row if row in self.ct else None

        def delete(row: CtRow) -> bool:
            self.ct.remove(row)
            return True

        return conntrack.sweep(list(self.ct), now_ns, timeouts, recheck=recheck, delete=delete)

    def write_settings(self, settings: Settings) -> bool:
        self._enter("write_settings")
        changed = self.settings is None or bytes(self.settings) != bytes(settings)
        self.settings = settings
        return changed

    # --- helpers for tests --------------------------------------------------------------------

    def count(self, ifindex: int, packets: int) -> None:
        """Traffic: the datapath adds to an endpoint's counters."""
        c = self.stats[ifindex]
        self.stats[ifindex] = Counters(
            from_pod=Counter(c.from_pod.packets + packets, c.from_pod.bytes + 100 * packets),
            to_pod=Counter(c.to_pod.packets + packets, c.to_pod.bytes + 100 * packets),
        )


class FakeStore:
    """This node's keys of KV weir-endpoints."""

    def __init__(self) -> None:
        self.data: dict[str, EndpointRecord | None] = {}
        self.down = False
        self.writes = 0

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("nats: no servers available")

    async def snapshot(self) -> dict[str, EndpointRecord | None]:
        self._check()
        return dict(self.data)

    async def put(self, record: EndpointRecord) -> None:
        self._check()
        self.writes += 1
        self.data[record.container_id] = record

    async def delete(self, container_id: str) -> None:
        self._check()
        self.writes += 1
        self.data.pop(container_id, None)
