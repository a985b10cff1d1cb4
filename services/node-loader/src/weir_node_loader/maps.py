"""Every BPF map node-loader owns, mirrored from bpf/lib/endpoints.h: the one Python spelling.

One ctypes struct per C struct (same field names, types and order, so the same layout), one
`MapSpec` per map (pin name, type, key, value, capacity, flags), and the conversions between an
`EndpointRecord` and the entries that realize it. Capacities live here and reach the C code as
-D flags, so the two cannot disagree; the struct layouts are tested against the header (compiled
by the host C compiler) and against BCC's own ctypes Key/Leaf types.

Byte order follows the C comments: ifindex in host order (as skb->ifindex), the pod IP in
network order (as in the IP header), MACs as bytes.
"""

from __future__ import annotations

import ctypes as ct
import ipaddress
import sys
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from weir.models import EndpointRecord

MAX_ENDPOINTS = 1024  # pods per node; Kubernetes' default limit is 110
MAX_EP_STATS = 2 * MAX_ENDPOINTS  # one counter entry per endpoint and direction


class MapType(IntEnum):
    """enum bpf_map_type values of the maps Weir uses."""

    HASH = 1
    PERCPU_HASH = 5


class MapFlag(IntEnum):
    NO_PREALLOC = 1  # BPF_F_NO_PREALLOC


class Direction(IntEnum):
    """enum weir_direction: seen from the pod. Never renumber (counter keys carry it)."""

    FROM_POD = 1  # tc ingress of the host veth
    TO_POD = 2  # tc egress of the host veth


class EndpointKey(ct.Structure):
    """struct endpoint_key"""

    _fields_ = [("ifindex", ct.c_uint32)]


class EndpointInfo(ct.Structure):
    """struct endpoint_info"""

    _fields_ = [
        ("ip", ct.c_uint32),  # network byte order
        ("mac", ct.c_uint8 * 6),
        ("host_mac", ct.c_uint8 * 6),
    ]


class EpStatsKey(ct.Structure):
    """struct ep_stats_key"""

    _fields_ = [
        ("ifindex", ct.c_uint32),
        ("dir", ct.c_uint8),
        ("pad", ct.c_uint8 * 3),
    ]


class EpStats(ct.Structure):
    """struct ep_stats (one per possible CPU in the map)"""

    _fields_ = [("packets", ct.c_uint64), ("bytes", ct.c_uint64)]


class EndpointMeta(ct.Structure):
    """struct endpoint_meta"""

    _fields_ = [
        ("container_id", ct.c_char * 128),
        ("pod_namespace", ct.c_char * 64),
        ("pod_name", ct.c_char * 256),
        ("netns", ct.c_char * 256),
        ("ifname", ct.c_char * 16),
        ("host_ifname", ct.c_char * 16),
    ]


@dataclass(frozen=True)
class MapSpec:
    """One pinned map: what its pin must be, checked before it is trusted."""

    name: str  # pin file name under <bpf_root>/<node>/, and the C variable name
    map_type: MapType
    key: type[ct.Structure]
    value: type[ct.Structure]
    max_entries: int
    flags: int = 0
    c_key: str = ""  # the C struct names, for the layout tests
    c_value: str = ""

    @property
    def key_size(self) -> int:
        return ct.sizeof(self.key)

    @property
    def value_size(self) -> int:
        return ct.sizeof(self.value)

    @property
    def per_cpu(self) -> bool:
        return self.map_type == MapType.PERCPU_HASH

    def pin(self, pin_dir: Path) -> Path:
        return pin_dir / self.name


ENDPOINTS = MapSpec(
    "weir_endpoints_v1",
    MapType.HASH,
    EndpointKey,
    EndpointInfo,
    MAX_ENDPOINTS,
    c_key="endpoint_key",
    c_value="endpoint_info",
)
EP_STATS = MapSpec(
    "weir_ep_stats_v1",
    MapType.PERCPU_HASH,
    EpStatsKey,
    EpStats,
    MAX_EP_STATS,
    c_key="ep_stats_key",
    c_value="ep_stats",
)
EP_META = MapSpec(
    "weir_ep_meta_v1",
    MapType.HASH,
    EndpointKey,
    EndpointMeta,
    MAX_ENDPOINTS,
    flags=MapFlag.NO_PREALLOC,
    c_key="endpoint_key",
    c_value="endpoint_meta",
)
SPECS: tuple[MapSpec, ...] = (ENDPOINTS, EP_STATS, EP_META)


def defines() -> dict[str, str]:
    """The -D settings bpf/lib/common.h requires, besides the pin directory."""
    return {"WEIR_MAX_ENDPOINTS": str(MAX_ENDPOINTS), "WEIR_MAX_EP_STATS": str(MAX_EP_STATS)}


# --- conversions ------------------------------------------------------------------------------


def ip_to_be32(ip: str) -> int:
    """The u32 whose bytes in memory are the address in network order (struct iphdr's)."""
    return int.from_bytes(ipaddress.IPv4Address(ip).packed, sys.byteorder)


def be32_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value.to_bytes(4, sys.byteorder)))


def mac_to_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def bytes_to_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _text(value: str, field: str, size: int) -> bytes:
    raw = value.encode()
    if len(raw) >= size:
        raise ValueError(f"{field} is longer than {size - 1} bytes")
    return raw


def endpoint_key(ifindex: int) -> EndpointKey:
    return EndpointKey(ifindex=ifindex)


def stats_key(ifindex: int, direction: Direction) -> EpStatsKey:
    return EpStatsKey(ifindex=ifindex, dir=direction)


def endpoint_info(record: EndpointRecord) -> EndpointInfo:
    info = EndpointInfo(ip=ip_to_be32(record.ip))
    info.mac[:] = list(mac_to_bytes(record.mac))
    info.host_mac[:] = list(mac_to_bytes(record.host_mac))
    return info


def endpoint_meta(record: EndpointRecord) -> EndpointMeta:
    meta = EndpointMeta()
    for name, size in ((f[0], ct.sizeof(f[1])) for f in EndpointMeta._fields_):
        setattr(meta, name, _text(getattr(record, name), name, size))
    return meta


def record_of(node: str, ifindex: int, info: EndpointInfo, meta: EndpointMeta) -> EndpointRecord:
    """The endpoint the maps hold for one host veth (the inverse of the two functions above)."""
    return EndpointRecord(
        node=node,
        container_id=meta.container_id.decode(),
        pod_namespace=meta.pod_namespace.decode(),
        pod_name=meta.pod_name.decode(),
        ip=be32_to_ip(info.ip),
        mac=bytes_to_mac(bytes(info.mac)),
        host_ifname=meta.host_ifname.decode(),
        host_ifindex=ifindex,
        host_mac=bytes_to_mac(bytes(info.host_mac)),
        netns=meta.netns.decode(),
        ifname=meta.ifname.decode(),
    )


@dataclass(frozen=True, slots=True)
class Counter:
    packets: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Counters:
    """An endpoint's counters, summed over CPUs."""

    from_pod: Counter = Counter()
    to_pod: Counter = Counter()

    def to_json(self) -> dict[str, dict[str, int]]:
        return {
            "from_pod": {"packets": self.from_pod.packets, "bytes": self.from_pod.bytes},
            "to_pod": {"packets": self.to_pod.packets, "bytes": self.to_pod.bytes},
        }


def sum_per_cpu(values: list[EpStats]) -> Counter:
    return Counter(sum(v.packets for v in values), sum(v.bytes for v in values))
