"""The policy maps of one node — ipcache, policy, conntrack, counters, settings — as rows.

Shared by the service (through linux.py, on the kernel thread) and by `weir bpf`, which opens
the pins read-only. It converts between the maps' ctypes structs (maps.py) and the pure
modules' values (ipcache.Value, policy.Row), and keeps Katran's habit of an explicit in-memory
copy of what the policy maps hold (`_policies`, read from the maps once, then kept in step with
every write), so a flip or a removal knows its keys without walking the trie.

Write order is the contract with the running programs (bpf/lib/policy.h): a flip writes the
inactive slot, then replaces the config entry (the atomic switch), and only then deletes the old
slot; a removal deletes the config entry first, so no packet looks up a half-deleted slot.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from weir_node_loader import bpfsys, maps
from weir_node_loader.ipcache import Diff, Table, Tables, Value
from weir_node_loader.maps import (
    CtEntry,
    CtKey,
    Direction,
    EpPolicy,
    EventCount,
    IPCacheKey,
    IPCacheValue,
    MapSpec,
    PolicyKey,
    PolicyValue,
    Reason,
    ReasonStats,
)
from weir_node_loader.pins import PinnedMap
from weir_node_loader.policy import EpConfig, Flip, Realized, Row, RowValue

SPECS: tuple[MapSpec, ...] = (
    maps.IPCACHE,
    maps.IPCACHE_CIDR,
    maps.POLICY,
    maps.EP_POLICY,
    maps.CT,
    maps.FRAG,
    maps.SETTINGS,
    maps.EVENT_BUCKET,
    maps.EVENT_STATS,
    maps.REASON_STATS,
    maps.EVENTS,
)


# --- conversions ------------------------------------------------------------------------------


def ipcache_key(prefix: str) -> IPCacheKey:
    net = ipaddress.IPv4Network(prefix)
    return IPCacheKey(prefixlen=net.prefixlen, addr=maps.ip_to_be32(str(net.network_address)))


def prefix_of(key: IPCacheKey) -> str:
    return f"{maps.be32_to_ip(key.addr)}/{key.prefixlen}"


def ipcache_value(value: Value) -> IPCacheValue:
    return IPCacheValue(identity=value.identity, kind=value.kind, flags=value.flags)


def value_of(raw: IPCacheValue) -> Value:
    return Value(raw.identity, raw.kind, raw.flags)


def policy_key(ifindex: int, slot: int, row: Row) -> PolicyKey:
    with_proto = row.prefixlen >= maps.POLICY_PREFIX_ANY_PORT
    with_port = row.prefixlen > maps.POLICY_PREFIX_PORT0
    return PolicyKey(
        prefixlen=row.prefixlen,
        ifindex=ifindex,
        identity=row.identity,
        slot=slot,
        direction=row.direction,
        protocol=row.protocol if with_proto else 0,
        dport=socket.htons(row.port) if with_port else 0,
    )


def row_of(key: PolicyKey) -> tuple[int, int, Row]:
    """(ifindex, slot, row) of a policy key."""
    with_proto = key.prefixlen >= maps.POLICY_PREFIX_ANY_PORT
    with_port = key.prefixlen > maps.POLICY_PREFIX_PORT0
    row = Row(
        direction=key.direction,
        identity=key.identity,
        protocol=key.protocol if with_proto else 0,
        prefixlen=key.prefixlen,
        port=socket.ntohs(key.dport) if with_port else 0,
    )
    return key.ifindex, key.slot, row


def ep_policy(config: EpConfig, slot: int) -> EpPolicy:
    return EpPolicy(
        ingress_cookie=config.ingress_cookie,
        egress_cookie=config.egress_cookie,
        identity=config.identity,
        flags=config.flags,
        slot=slot,
    )


def config_of(raw: EpPolicy) -> tuple[EpConfig, int]:
    return EpConfig(raw.identity, raw.flags, raw.ingress_cookie, raw.egress_cookie), raw.slot


@dataclass(frozen=True, slots=True)
class CtRow:
    """One conntrack entry, decoded."""

    saddr: str
    daddr: str
    sport: int  # host byte order
    dport: int
    protocol: int
    direction: Direction | int
    created_ns: int
    last_seen_ns: int
    cookie: int
    remote_identity: int
    flags: int

    @classmethod
    def of(cls, key: CtKey, entry: CtEntry) -> CtRow:
        try:
            direction: Direction | int = Direction(key.direction)
        except ValueError:
            direction = key.direction
        return cls(
            saddr=maps.be32_to_ip(key.saddr),
            daddr=maps.be32_to_ip(key.daddr),
            sport=socket.ntohs(key.sport),
            dport=socket.ntohs(key.dport),
            protocol=key.protocol,
            direction=direction,
            created_ns=entry.created_ns,
            last_seen_ns=entry.last_seen_ns,
            cookie=entry.cookie,
            remote_identity=entry.remote_identity,
            flags=entry.flags,
        )

    def key(self) -> CtKey:
        return CtKey(
            saddr=maps.ip_to_be32(self.saddr),
            daddr=maps.ip_to_be32(self.daddr),
            sport=socket.htons(self.sport),
            dport=socket.htons(self.dport),
            protocol=self.protocol,
            direction=int(self.direction),
        )


# --- the maps ---------------------------------------------------------------------------------


class DatapathMaps:
    def __init__(self, opened: Mapping[str, PinnedMap]) -> None:
        self._maps = dict(opened)
        self._policies: dict[int, Realized] | None = None  # the copy; None until first read

    @classmethod
    def open(cls, pin_dir: Path, *, readonly: bool = False) -> DatapathMaps:
        """Open and check the pins (PinMismatch when one is not what maps.py describes)."""
        opened: dict[str, PinnedMap] = {}
        try:
            for spec in SPECS:
                opened[spec.name] = PinnedMap.open(spec, pin_dir, readonly=readonly)
        except BaseException:
            for m in opened.values():
                m.close()
            raise
        return cls(opened)

    def close(self) -> None:
        for m in self._maps.values():
            m.close()

    def __enter__(self) -> DatapathMaps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, spec: MapSpec) -> PinnedMap:
        return self._maps[spec.name]

    @property
    def map_ids(self) -> frozenset[int]:
        return frozenset(m.id for m in self._maps.values())

    # --- ipcache ------------------------------------------------------------------------------

    def _table(self, spec: MapSpec) -> Table:
        m = self.map(spec)
        out: Table = {}
        for key in m.all_keys():
            raw = m.get(key)
            if isinstance(key, IPCacheKey) and isinstance(raw, IPCacheValue):
                out[prefix_of(key)] = value_of(raw)
        return out

    def ipcache(self) -> Tables:
        return Tables(self._table(maps.IPCACHE), self._table(maps.IPCACHE_CIDR))

    def write_ipcache(self, main: Diff, cidr: Diff) -> int:
        """Apply both diffs (writes before deletes: a prefix is never briefly uncovered);
        returns the number of map operations."""
        ops = 0
        for spec, d in ((maps.IPCACHE, main), (maps.IPCACHE_CIDR, cidr)):
            m = self.map(spec)
            for prefix, value in d.put.items():
                m.put(ipcache_key(prefix), ipcache_value(value))
                ops += 1
            for prefix in d.delete:
                m.delete(ipcache_key(prefix))
                ops += 1
        return ops

    # --- policy -------------------------------------------------------------------------------

    def _read_policies(self) -> dict[int, Realized]:
        configs: dict[int, tuple[EpConfig, int]] = {}
        cfg_map = self.map(maps.EP_POLICY)
        for key in cfg_map.all_keys():
            raw = cfg_map.get(key)
            if isinstance(raw, EpPolicy):
                configs[key.ifindex] = config_of(raw)
        slots: dict[int, dict[int, dict[Row, RowValue]]] = {}
        pol = self.map(maps.POLICY)
        for key in pol.all_keys():
            raw = pol.get(key)
            if not isinstance(key, PolicyKey) or not isinstance(raw, PolicyValue):
                continue
            ifindex, slot, row = row_of(key)
            slots.setdefault(ifindex, {}).setdefault(slot, {})[row] = RowValue(
                raw.verdict, raw.cookie
            )
        out: dict[int, Realized] = {}
        for ifindex in set(configs) | set(slots):
            config, slot = configs.get(ifindex, (None, 0))
            out[ifindex] = Realized(config, slot, slots.get(ifindex, {}))
        return out

    def policies(self, *, reread: bool = False) -> dict[int, Realized]:
        """What the policy maps hold, by endpoint ifindex (from the copy; `reread` walks the
        maps again, repairing the copy from drift)."""
        if self._policies is None or reread:
            self._policies = self._read_policies()
        return dict(self._policies)

    def policy_of(self, ifindex: int) -> Realized | None:
        return self.policies().get(ifindex)

    def _write_rows(self, ifindex: int, slot: int, put: Mapping[Row, RowValue]) -> None:
        pol = self.map(maps.POLICY)
        for row, value in put.items():
            pol.put(
                policy_key(ifindex, slot, row),
                PolicyValue(cookie=value.cookie, verdict=value.verdict),
            )

    def _delete_rows(self, ifindex: int, slot: int, rows: Iterable[Row]) -> None:
        pol = self.map(maps.POLICY)
        for row in rows:
            pol.delete(policy_key(ifindex, slot, row))

    def flip(self, ifindex: int, flip: Flip) -> None:
        """Fill the inactive slot and switch the config to it. The old slot is left for
        `finish` (after the programs reading it have had time to finish)."""
        current = self.policies().get(ifindex)
        slots = {s: dict(r) for s, r in (current.slots if current else {}).items()}
        self._delete_rows(ifindex, flip.slot, flip.delete_first)
        self._write_rows(ifindex, flip.slot, flip.put)
        target = slots.setdefault(flip.slot, {})
        for row in flip.delete_first:
            target.pop(row, None)
        target.update(flip.put)
        config = flip.config if flip.write_config or current is None else current.config
        slot = flip.slot if flip.write_config or current is None else current.slot
        if flip.write_config:
            self.map(maps.EP_POLICY).put(
                maps.endpoint_key(ifindex), ep_policy(flip.config, flip.slot)
            )
        assert self._policies is not None
        self._policies[ifindex] = Realized(config, slot, slots)

    def finish(self, ifindex: int, flip: Flip) -> None:
        """Delete the old slot's rows (the second half of a flip)."""
        other = 1 - flip.slot
        self._delete_rows(ifindex, other, flip.delete_after)
        current = self.policies().get(ifindex)
        if current is None:
            return
        slots = {s: dict(r) for s, r in current.slots.items()}
        for row in flip.delete_after:
            slots.get(other, {}).pop(row, None)
        assert self._policies is not None
        self._policies[ifindex] = Realized(current.config, current.slot, slots)

    def remove_policy(self, ifindex: int) -> bool:
        """Delete the endpoint's config, then its rows. True when there was any."""
        current = self.policies().get(ifindex)
        removed = self.map(maps.EP_POLICY).delete(maps.endpoint_key(ifindex))
        if current is not None:
            for slot, rows in current.slots.items():
                self._delete_rows(ifindex, slot, rows)
                removed |= bool(rows)
            assert self._policies is not None
            self._policies.pop(ifindex, None)
        return removed

    # --- conntrack ----------------------------------------------------------------------------

    def ct_rows(self) -> list[CtRow]:
        m = self.map(maps.CT)
        out = []
        for raw_key, raw_value in bpfsys.map_lookup_batch(
            m.fd, maps.CT.key_size, maps.CT.value_size
        ):
            out.append(
                CtRow.of(CtKey.from_buffer_copy(raw_key), CtEntry.from_buffer_copy(raw_value))
            )
        return out

    def ct_get(self, row: CtRow) -> CtRow | None:
        key = row.key()
        raw = self.map(maps.CT).get(key)
        return CtRow.of(key, raw) if isinstance(raw, CtEntry) else None

    def ct_delete(self, row: CtRow) -> bool:
        return self.map(maps.CT).delete(row.key())

    def ct_put(self, row: CtRow) -> None:
        """Write an entry (tests and tools: the datapath makes them)."""
        entry = CtEntry(
            created_ns=row.created_ns,
            last_seen_ns=row.last_seen_ns,
            cookie=row.cookie,
            flags=row.flags,
            remote_identity=row.remote_identity,
        )
        self.map(maps.CT).put(row.key(), entry)

    # --- counters and settings ----------------------------------------------------------------

    def reason_stats(self) -> dict[tuple[Reason, Direction], tuple[int, int]]:
        """(reason, direction) -> (packets, bytes) summed over CPUs, for every known pair
        that has counted anything."""
        m = self.map(maps.REASON_STATS)
        out: dict[tuple[Reason, Direction], tuple[int, int]] = {}
        for reason in Reason:
            for direction in Direction:
                values = m.get_per_cpu(maps.U32Key(maps.reason_index(reason, direction)))
                if not values:
                    continue
                stats = [v for v in values if isinstance(v, ReasonStats)]
                packets = sum(v.packets for v in stats)
                if packets:
                    out[(reason, direction)] = (packets, sum(v.bytes for v in stats))
        return out

    def event_stats(self) -> dict[maps.EventCounter, int]:
        m = self.map(maps.EVENT_STATS)
        out = {}
        for counter in maps.EventCounter:
            values = m.get_per_cpu(maps.U32Key(int(counter))) or []
            out[counter] = sum(v.count for v in values if isinstance(v, EventCount))
        return out

    def write_settings(self, settings: maps.Settings) -> bool:
        """Write the datapath's settings; True when they changed."""
        m = self.map(maps.SETTINGS)
        held = m.get(maps.U32Key(0))
        if held is not None and bytes(held) == bytes(settings):
            return False
        m.put(maps.U32Key(0), settings)
        return True

    def settings(self) -> maps.Settings | None:
        held = self.map(maps.SETTINGS).get(maps.U32Key(0))
        return held if isinstance(held, maps.Settings) else None
