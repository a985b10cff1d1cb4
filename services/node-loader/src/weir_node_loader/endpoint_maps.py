"""The three endpoint maps of one node, read and written as endpoints rather than entries.

Shared by the service (through linux.py) and by `weir bpf endpoint list`, which opens the pins
read-only and needs neither BCC nor node-loader. Write order matters to the running programs:
counters first and the endpoint entry last on the way in, the endpoint entry first on the way
out, so a program that finds an endpoint always finds its counters too.
"""

from __future__ import annotations

from pathlib import Path

from weir.models import EndpointRecord

from weir_node_loader import bpfsys, maps
from weir_node_loader.kernel import Realized
from weir_node_loader.maps import Counter, Counters, Direction, EndpointInfo, EndpointMeta, EpStats
from weir_node_loader.pins import PinnedMap

_DIRECTIONS = frozenset(int(d) for d in Direction)


class EndpointMaps:
    def __init__(self, endpoints: PinnedMap, stats: PinnedMap, meta: PinnedMap) -> None:
        self.endpoints = endpoints
        self.stats = stats
        self.meta = meta

    @classmethod
    def open(cls, pin_dir: Path, *, readonly: bool = False) -> EndpointMaps:
        """Open and check the pins (PinMismatch when one is not what maps.py describes)."""
        opened: list[PinnedMap] = []
        try:
            for spec in (maps.ENDPOINTS, maps.EP_STATS, maps.EP_META):
                opened.append(PinnedMap.open(spec, pin_dir, readonly=readonly))
        except BaseException:
            for m in opened:
                m.close()
            raise
        return cls(*opened)

    def close(self) -> None:
        for m in (self.endpoints, self.stats, self.meta):
            m.close()

    def __enter__(self) -> EndpointMaps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def map_ids(self) -> frozenset[int]:
        return frozenset(m.id for m in (self.endpoints, self.stats, self.meta))

    def realized(self, node: str) -> dict[int, Realized]:
        """Every endpoint the maps hold, by host veth ifindex (half-written ones too)."""
        infos = {k.ifindex for k in self.endpoints.all_keys()}
        metas = {k.ifindex for k in self.meta.all_keys()}
        stats = {(k.ifindex, k.dir) for k in self.stats.all_keys()}
        out: dict[int, Realized] = {}
        for ifindex in sorted(infos | metas | {i for i, _ in stats}):
            key = maps.endpoint_key(ifindex)
            info = self.endpoints.get(key)
            meta = self.meta.get(key)
            record = None
            if isinstance(info, EndpointInfo) and isinstance(meta, EndpointMeta):
                try:
                    record = maps.record_of(node, ifindex, info, meta)
                except ValueError:  # undecodable text: as good as half-written
                    record = None
            counted = all((ifindex, int(d)) in stats for d in Direction)
            out[ifindex] = Realized(ifindex, record, record is not None and counted)
        return out

    def counters(self, ifindex: int | None = None) -> dict[int, Counters]:
        """Counters summed over CPUs, by ifindex: every endpoint's, or only `ifindex`'s (two
        lookups instead of a walk of the whole map)."""
        per: dict[int, dict[Direction, Counter]] = {}
        if ifindex is None:
            keys = self.stats.all_keys()
        else:
            keys = [maps.stats_key(ifindex, d) for d in Direction]
        for key in keys:
            values = self.stats.get_per_cpu(key)
            if values is None or key.dir not in _DIRECTIONS:
                continue
            summed = maps.sum_per_cpu([v for v in values if isinstance(v, EpStats)])
            per.setdefault(key.ifindex, {})[Direction(key.dir)] = summed
        return {
            ifindex: Counters(
                from_pod=d.get(Direction.FROM_POD, Counter()),
                to_pod=d.get(Direction.TO_POD, Counter()),
            )
            for ifindex, d in per.items()
        }

    def write(self, record: EndpointRecord) -> bool:
        """Make the maps hold `record`; counters are created when missing, never reset (except
        another endpoint's, left on a reused ifindex). True when anything changed."""
        ifindex = record.host_ifindex
        key = maps.endpoint_key(ifindex)
        info = maps.endpoint_info(record)
        meta = maps.endpoint_meta(record)
        changed = False
        held = self.meta.get(key)
        if isinstance(held, EndpointMeta) and held.container_id != meta.container_id:
            for d in Direction:
                self.stats.delete(maps.stats_key(ifindex, d))
        for d in Direction:
            if self.stats.put(maps.stats_key(ifindex, d), EpStats(), bpfsys.NOEXIST):
                changed = True
        if held is None or bytes(held) != bytes(meta):
            self.meta.put(key, meta)
            changed = True
        current = self.endpoints.get(key)
        if current is None or bytes(current) != bytes(info):
            self.endpoints.put(key, info)
            changed = True
        return changed

    def remove(self, ifindex: int) -> bool:
        """Delete every entry of `ifindex`; True when there was any."""
        key = maps.endpoint_key(ifindex)
        removed = self.endpoints.delete(key)
        for d in Direction:
            removed |= self.stats.delete(maps.stats_key(ifindex, d))
        removed |= self.meta.delete(key)
        return removed
