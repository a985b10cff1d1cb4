"""The node's ipcache: KV weir-ipcache as this node's datapath must see it. No I/O.

identity-allocator writes one `IPCacheEntry` per prefix for the whole cluster. node-loader
writes all of them into weir_ipcache_v1, with two local changes:

- this node's own addresses (kind NODE, `node` = this node) carry the reserved HOST identity
  instead of REMOTE_NODE, as do the gateway address every pod veth answers on (169.254.1.1, the
  source of traffic the node itself sends to its pods) — so policy's "allow HOST" means this
  node and only it;
- the CIDR and WORLD entries are also written to weir_ipcache_cidr_v1, the table an endpoint
  with upstream ipBlock semantics consults for pod and node addresses — and so is the CIDR
  identity a pod or node entry carries (`cidr_identity`: an ipBlock naming exactly its prefix).

`diff` says what to write and delete to turn one table into another; `Lpm` answers longest-
prefix lookups in user space (to name the remote end of a verdict event).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from weir.identity import Reserved
from weir.models import IPCacheEntry, IPCacheKind

from weir_node_loader.maps import IPCacheFlag
from weir_node_loader.maps import IPCacheKind as MapKind

KINDS: dict[IPCacheKind, MapKind] = {
    IPCacheKind.POD: MapKind.POD,
    IPCacheKind.NODE: MapKind.NODE,
    IPCacheKind.CIDR: MapKind.CIDR,
    IPCacheKind.WORLD: MapKind.WORLD,
}


@dataclass(frozen=True, slots=True, order=True)
class Value:
    """An ipcache map value."""

    identity: int
    kind: int  # maps.IPCacheKind
    flags: int = 0  # maps.IPCacheFlag bits

    @property
    def is_cidr(self) -> bool:
        return bool(self.flags & IPCacheFlag.CIDR)


Table = dict[str, Value]  # normalized prefix ("10.244.1.5/32") -> value


@dataclass(frozen=True, slots=True)
class Tables:
    main: Table
    cidr: Table


def normalize(prefix: str) -> str:
    """`a.b.c.d/n` with host bits cleared; ValueError for anything else (IPv6 included)."""
    net = ipaddress.ip_network(prefix, strict=False)
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"{prefix} is not an IPv4 prefix")
    return str(net)


def value_of(entry: IPCacheEntry, node: str) -> Value:
    kind = KINDS[entry.kind]
    flags = IPCacheFlag.CIDR if kind in (MapKind.CIDR, MapKind.WORLD) else 0
    identity = entry.identity
    if entry.kind == IPCacheKind.NODE and entry.node == node:
        identity = Reserved.HOST
    return Value(identity & 0xFFFFFFFF, int(kind), int(flags))


def desired(
    entries: Iterable[IPCacheEntry], node: str, host_addresses: Iterable[str] = ()
) -> tuple[Tables, list[str]]:
    """The tables for this node from KV's entries (plus `host_addresses`: this node's own, such
    as the pods' gateway), and the entries that could not be used (with why)."""
    main: Table = {}
    carried: Table = {}
    problems: list[str] = []
    for entry in entries:
        try:
            prefix = normalize(entry.prefix)
            value = value_of(entry, node)
        except (ValueError, KeyError) as e:
            problems.append(f"{entry.prefix}: {e}")
            continue
        held = main.get(prefix)
        if held is not None and held != value:
            # Two keys for one prefix (10.0.0.1/8 and 10.0.0.0/8): keep one, deterministically.
            problems.append(f"{prefix}: given twice ({held.identity} and {value.identity})")
            value = min(held, value)
        main[prefix] = value
        if entry.cidr_identity:
            carried[prefix] = Value(
                entry.cidr_identity & 0xFFFFFFFF, int(MapKind.CIDR), int(IPCacheFlag.CIDR)
            )
    for address in host_addresses:
        prefix = normalize(f"{address}/32")
        main[prefix] = Value(int(Reserved.HOST), int(MapKind.NODE), int(IPCacheFlag.LOCAL))
    cidr = {**carried, **{p: v for p, v in main.items() if v.is_cidr}}
    return Tables(main, cidr), problems


@dataclass(frozen=True, slots=True)
class Diff:
    put: Mapping[str, Value]
    delete: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.put or self.delete)


def diff(want: Mapping[str, Value], have: Mapping[str, Value]) -> Diff:
    return Diff(
        put={p: v for p, v in sorted(want.items()) if have.get(p) != v},
        delete=tuple(sorted(p for p in have if p not in want)),
    )


class Lpm:
    """Longest-prefix match over a table of prefixes, in user space (at most 33 dict probes)."""

    def __init__(self, table: Mapping[str, object]) -> None:
        self._by_len: dict[int, dict[int, str]] = {}
        for prefix in table:
            net = ipaddress.IPv4Network(prefix)
            self._by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = prefix
        self._lengths = sorted(self._by_len, reverse=True)

    def match(self, address: str) -> str | None:
        """The longest prefix covering `address`, or None."""
        value = int(ipaddress.IPv4Address(address))
        for length in self._lengths:
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            found = self._by_len[length].get(value & mask)
            if found is not None:
                return found
        return None
