"""Every BPF map node-loader owns, mirrored from bpf/lib/*.h: the one Python spelling.

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
MAX_IPCACHE = 65536  # prefixes known cluster-wide: pods, nodes, ipBlock CIDRs
MAX_IPCACHE_CIDR = 32768  # the CIDR and WORLD ones among them
MAX_POLICY = 262144  # every endpoint's entries, both slots (a flip holds two copies briefly)
MAX_CT = 65536  # tracked flows on the node
MAX_FRAG = 4096  # fragmented datagrams in flight
REASON_SLOTS = 256  # weir_reason_stats_v1: reason << 2 | direction
EVENTS_BYTES = 256 * 4096  # the verdict ring buffer: 1 MiB, ~21k events
EVENTS_COUNTERS = 4  # weir_event_stats_v1 entries (WEIR_EVENTS_COUNTERS)


class MapType(IntEnum):
    """enum bpf_map_type values of the maps Weir uses."""

    HASH = 1
    ARRAY = 2
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LPM_TRIE = 11
    RINGBUF = 27


class MapFlag(IntEnum):
    NO_PREALLOC = 1  # BPF_F_NO_PREALLOC


class Direction(IntEnum):
    """enum weir_direction: seen from the pod. Never renumber (counter keys carry it)."""

    FROM_POD = 1  # tc ingress of the host veth
    TO_POD = 2  # tc egress of the host veth


class Reason(IntEnum):
    """enum weir_reason (bpf/lib/reasons.h): why a packet passed or was dropped. Never renumber;
    tested against the header. `label` is the name metrics and flows use."""

    UNSPEC = 0
    POLICY_ALLOW = 1
    NOT_ENFORCED = 2
    CT_ESTABLISHED = 3
    CT_REPLY = 4
    CT_RELATED = 5
    POLICY_DENIED = 32
    POLICY_DENY_RULE = 33
    MALFORMED = 34
    FRAGMENT_UNKNOWN = 35

    @property
    def is_drop(self) -> bool:
        return self >= REASON_FIRST_DROP

    @property
    def label(self) -> str:
        return _REASON_LABELS[self]


REASON_FIRST_DROP = 32  # WEIR_REASON_FIRST_DROP
_REASON_LABELS = {
    Reason.UNSPEC: "unspecified",
    Reason.POLICY_ALLOW: "policy",
    Reason.NOT_ENFORCED: "no-policy",
    Reason.CT_ESTABLISHED: "established",
    Reason.CT_REPLY: "reply",
    Reason.CT_RELATED: "related",
    Reason.POLICY_DENIED: "policy-denied",
    Reason.POLICY_DENY_RULE: "policy-deny-rule",
    Reason.MALFORMED: "malformed",
    Reason.FRAGMENT_UNKNOWN: "fragment-unknown",
}


def reason_of(value: int) -> Reason | None:
    try:
        return Reason(value)
    except ValueError:
        return None


def reason_index(reason: int, direction: int) -> int:
    """The index of (reason, direction) in weir_reason_stats_v1."""
    return (reason << 2) | (direction & 3)


class Verdict(IntEnum):
    """enum weir_verdict."""

    NONE = 0
    ALLOW = 1
    DENY = 2


class IPCacheKind(IntEnum):
    """enum weir_ipcache_kind (weir.models.IPCacheKind in the map). Never renumber."""

    POD = 1
    NODE = 2
    CIDR = 3
    WORLD = 4


class IPCacheFlag(IntEnum):
    CIDR = 1  # WEIR_IPCACHE_F_CIDR: a CIDR or WORLD entry
    LOCAL = 2  # WEIR_IPCACHE_F_LOCAL: node-loader's own entry, not from KV


class EpPolicyFlag(IntEnum):
    INGRESS_ENFORCED = 1
    EGRESS_ENFORCED = 2
    IPBLOCK_PODS = 4


class CtFlag(IntEnum):
    SYN = 1
    REPLIED = 2
    FIN_FWD = 4
    FIN_REV = 8
    RST = 16


class EventCounter(IntEnum):
    """enum weir_event_counter: indexes of weir_event_stats_v1. Never renumber."""

    SENT = 0
    SUPPRESSED = 1
    LOST = 2


class SettingsFlag(IntEnum):
    EVENTS_UNENFORCED = 1


# Prefix lengths of policy keys (bits after `prefixlen`), as in bpf/lib/policy.h.
POLICY_PREFIX_ANY_PROTO = 80
POLICY_PREFIX_ANY_PORT = 88
POLICY_PREFIX_PORT0 = 96
POLICY_PREFIX_FULL = 112


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


class U32Key(ct.Structure):
    """A plain __u32 key (array maps)."""

    _fields_ = [("index", ct.c_uint32)]


class Empty(ct.Structure):
    """No key or value: a ring buffer's."""

    _fields_ = ()


class IPCacheKey(ct.Structure):
    """struct ipcache_key (the kernel's bpf_lpm_trie_key layout)"""

    _fields_ = [("prefixlen", ct.c_uint32), ("addr", ct.c_uint32)]  # addr: network byte order


class IPCacheValue(ct.Structure):
    """struct ipcache_value"""

    _fields_ = [
        ("identity", ct.c_uint32),
        ("kind", ct.c_uint8),
        ("flags", ct.c_uint8),
        ("pad", ct.c_uint8 * 2),
    ]


class PolicyKey(ct.Structure):
    """struct policy_key"""

    _fields_ = [
        ("prefixlen", ct.c_uint32),
        ("ifindex", ct.c_uint32),
        ("identity", ct.c_uint32),
        ("slot", ct.c_uint8),
        ("direction", ct.c_uint8),
        ("protocol", ct.c_uint8),
        ("pad", ct.c_uint8),
        ("dport", ct.c_uint16),  # network byte order
        ("pad2", ct.c_uint8 * 2),
    ]


class PolicyValue(ct.Structure):
    """struct policy_value"""

    _fields_ = [("cookie", ct.c_uint64), ("verdict", ct.c_uint8), ("pad", ct.c_uint8 * 7)]


class EpPolicy(ct.Structure):
    """struct ep_policy"""

    _fields_ = [
        ("ingress_cookie", ct.c_uint64),
        ("egress_cookie", ct.c_uint64),
        ("identity", ct.c_uint32),
        ("flags", ct.c_uint8),
        ("slot", ct.c_uint8),
        ("pad", ct.c_uint8 * 2),
    ]


class CtKey(ct.Structure):
    """struct ct_key"""

    _fields_ = [
        ("saddr", ct.c_uint32),  # network byte order
        ("daddr", ct.c_uint32),
        ("sport", ct.c_uint16),  # network byte order
        ("dport", ct.c_uint16),
        ("protocol", ct.c_uint8),
        ("direction", ct.c_uint8),
        ("pad", ct.c_uint8 * 2),
    ]


class CtEntry(ct.Structure):
    """struct ct_entry"""

    _fields_ = [
        ("created_ns", ct.c_uint64),
        ("last_seen_ns", ct.c_uint64),
        ("cookie", ct.c_uint64),
        ("flags", ct.c_uint64),
        ("remote_identity", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


class FragKey(ct.Structure):
    """struct frag_key"""

    _fields_ = [
        ("saddr", ct.c_uint32),
        ("daddr", ct.c_uint32),
        ("ip_id", ct.c_uint16),
        ("protocol", ct.c_uint8),
        ("pad", ct.c_uint8),
    ]


class FragPorts(ct.Structure):
    """struct frag_ports"""

    _fields_ = [("sport", ct.c_uint16), ("dport", ct.c_uint16)]


class Settings(ct.Structure):
    """struct settings"""

    _fields_ = [
        ("events_per_sec", ct.c_uint32),
        ("events_burst", ct.c_uint32),
        ("flags", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


class EventBucket(ct.Structure):
    """struct event_bucket (one per possible CPU)"""

    _fields_ = [("credit_ns", ct.c_uint64), ("last_ns", ct.c_uint64)]


class EventCount(ct.Structure):
    """struct event_count (one per possible CPU)"""

    _fields_ = [("count", ct.c_uint64)]


class ReasonStats(ct.Structure):
    """struct reason_stats (one per possible CPU)"""

    _fields_ = [("packets", ct.c_uint64), ("bytes", ct.c_uint64)]


class VerdictEvent(ct.Structure):
    """struct verdict_event: one record of the weir_events_v1 ring buffer"""

    _fields_ = [
        ("time_ns", ct.c_uint64),
        ("cookie", ct.c_uint64),
        ("saddr", ct.c_uint32),
        ("daddr", ct.c_uint32),
        ("sport", ct.c_uint16),
        ("dport", ct.c_uint16),
        ("ifindex", ct.c_uint32),
        ("local_identity", ct.c_uint32),
        ("remote_identity", ct.c_uint32),
        ("protocol", ct.c_uint8),
        ("direction", ct.c_uint8),
        ("verdict", ct.c_uint8),
        ("pad", ct.c_uint8),
        ("reason", ct.c_uint16),
        ("pad2", ct.c_uint8 * 2),
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
        return self.map_type in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY)

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
IPCACHE = MapSpec(
    "weir_ipcache_v1",
    MapType.LPM_TRIE,
    IPCacheKey,
    IPCacheValue,
    MAX_IPCACHE,
    flags=MapFlag.NO_PREALLOC,
    c_key="ipcache_key",
    c_value="ipcache_value",
)
IPCACHE_CIDR = MapSpec(
    "weir_ipcache_cidr_v1",
    MapType.LPM_TRIE,
    IPCacheKey,
    IPCacheValue,
    MAX_IPCACHE_CIDR,
    flags=MapFlag.NO_PREALLOC,
    c_key="ipcache_key",
    c_value="ipcache_value",
)
POLICY = MapSpec(
    "weir_policy_v1",
    MapType.LPM_TRIE,
    PolicyKey,
    PolicyValue,
    MAX_POLICY,
    flags=MapFlag.NO_PREALLOC,
    c_key="policy_key",
    c_value="policy_value",
)
EP_POLICY = MapSpec(
    "weir_ep_policy_v1",
    MapType.HASH,
    EndpointKey,
    EpPolicy,
    MAX_ENDPOINTS,
    flags=MapFlag.NO_PREALLOC,
    c_key="endpoint_key",
    c_value="ep_policy",
)
CT = MapSpec(
    "weir_ct_v1",
    MapType.LRU_HASH,
    CtKey,
    CtEntry,
    MAX_CT,
    c_key="ct_key",
    c_value="ct_entry",
)
FRAG = MapSpec(
    "weir_frag_v1",
    MapType.LRU_HASH,
    FragKey,
    FragPorts,
    MAX_FRAG,
    c_key="frag_key",
    c_value="frag_ports",
)
SETTINGS = MapSpec(
    "weir_settings_v1",
    MapType.ARRAY,
    U32Key,
    Settings,
    1,
    c_value="settings",
)
EVENT_BUCKET = MapSpec(
    "weir_event_bucket_v1",
    MapType.PERCPU_ARRAY,
    U32Key,
    EventBucket,
    1,
    c_value="event_bucket",
)
EVENT_STATS = MapSpec(
    "weir_event_stats_v1",
    MapType.PERCPU_ARRAY,
    U32Key,
    EventCount,
    EVENTS_COUNTERS,
    c_value="event_count",
)
REASON_STATS = MapSpec(
    "weir_reason_stats_v1",
    MapType.PERCPU_ARRAY,
    U32Key,
    ReasonStats,
    REASON_SLOTS,
    c_value="reason_stats",
)
EVENTS = MapSpec("weir_events_v1", MapType.RINGBUF, Empty, Empty, EVENTS_BYTES)
EVENT_RECORD = VerdictEvent  # what one ring buffer record holds (struct verdict_event)

SPECS: tuple[MapSpec, ...] = (
    ENDPOINTS,
    EP_STATS,
    EP_META,
    IPCACHE,
    IPCACHE_CIDR,
    POLICY,
    EP_POLICY,
    CT,
    FRAG,
    SETTINGS,
    EVENT_BUCKET,
    EVENT_STATS,
    REASON_STATS,
    EVENTS,
)
# The C struct each mirror stands for, where it is not a map's key or value (layout tests).
RECORDS: dict[str, type[ct.Structure]] = {"verdict_event": VerdictEvent}


def defines() -> dict[str, str]:
    """The -D settings bpf/lib/common.h requires, besides the pin directory."""
    return {
        "WEIR_MAX_ENDPOINTS": str(MAX_ENDPOINTS),
        "WEIR_MAX_EP_STATS": str(MAX_EP_STATS),
        "WEIR_MAX_IPCACHE": str(MAX_IPCACHE),
        "WEIR_MAX_IPCACHE_CIDR": str(MAX_IPCACHE_CIDR),
        "WEIR_MAX_POLICY": str(MAX_POLICY),
        "WEIR_MAX_CT": str(MAX_CT),
        "WEIR_MAX_FRAG": str(MAX_FRAG),
        "WEIR_REASON_SLOTS": str(REASON_SLOTS),
        "WEIR_EVENTS_BYTES": str(EVENTS_BYTES),
    }


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
