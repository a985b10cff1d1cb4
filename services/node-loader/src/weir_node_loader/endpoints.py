"""Endpoint decisions with no I/O: what a registration means, and what reconciliation must do.

- `record_from_request` checks a CNI plugin's registration field by field (`InvalidRequest`
  names the field) and turns it into the `EndpointRecord` node-loader realizes and publishes.
- `Registry` is node-loader's view of the endpoints it has realized, and `admit` decides how a
  registration fits into it: unchanged, new, moved to another veth, or in conflict with a live
  endpoint (same veth or same IP) — stale holders whose veth is gone are evicted.
- `plan_reconcile` compares the three places an endpoint lives — its key in KV weir-endpoints,
  its veth in the node's namespace, its entries in the pinned maps (and Weir's tc filters) — and
  returns the actions that make them agree: re-adopt what is intact, repair what is half-done,
  remove what is stale. Level-triggered: the same inputs always give the same plan, and a plan
  applied to its own result is empty of changes.
"""

from __future__ import annotations

import ctypes
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from weir.endpoint_api import EndpointRequest
from weir.models import EndpointRecord

from weir_node_loader import maps
from weir_node_loader.kernel import Realized

# CNI container ids: alphanumerics, '_', '.', '-' (the spec's rule), bounded by the meta map.
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_IFNAME_MAX = 15  # IFNAMSIZ - 1
_TEXT_LIMITS = {f[0]: ctypes.sizeof(f[1]) - 1 for f in maps.EndpointMeta._fields_}


class InvalidRequest(ValueError):
    """A registration node-loader cannot realize; the message says which field and why."""


def validate_container_id(container_id: str) -> str:
    limit = _TEXT_LIMITS["container_id"]
    if not _CONTAINER_ID.fullmatch(container_id) or len(container_id) > limit:
        raise InvalidRequest(
            f"container_id {container_id[:80]!r} must be 1-{limit} characters of letters, "
            "digits, '_', '.' and '-', starting with a letter or digit"
        )
    return container_id


def _ifname(value: str, field: str) -> str:
    if not 0 < len(value.encode()) <= _IFNAME_MAX or value in (".", "..") or "/" in value:
        raise InvalidRequest(f"{field} {value!r} is not a valid interface name")
    if any(c.isspace() or c == ":" for c in value):
        raise InvalidRequest(f"{field} {value!r} is not a valid interface name")
    return value


def _mac(value: str, field: str) -> str:
    if not _MAC.fullmatch(value):
        raise InvalidRequest(f"{field} {value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    if int(value[:2], 16) & 1:
        raise InvalidRequest(f"{field} {value} is a multicast address")
    return value.lower()


def _ip(value: str) -> str:
    try:
        ip = ipaddress.IPv4Address(value)
    except ValueError:
        raise InvalidRequest(f"ip {value!r} is not an IPv4 address") from None
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback or int(ip) == 0xFFFFFFFF:
        raise InvalidRequest(f"ip {value} cannot be a pod address")
    return str(ip)


def record_from_request(node: str, req: EndpointRequest) -> EndpointRecord:
    """The record a registration asks for, or InvalidRequest."""
    validate_container_id(req.container_id)
    if not _DNS_LABEL.fullmatch(req.pod_namespace) or len(req.pod_namespace) > 63:
        raise InvalidRequest(f"pod_namespace {req.pod_namespace!r} is not a namespace name")
    if not _DNS_SUBDOMAIN.fullmatch(req.pod_name) or len(req.pod_name) > 253:
        raise InvalidRequest(f"pod_name {req.pod_name!r} is not a pod name")
    if req.host_ifindex <= 0 or req.host_ifindex > 0x7FFFFFFF:
        raise InvalidRequest(f"host_ifindex {req.host_ifindex} is not an interface index")
    if not req.netns or len(req.netns.encode()) > _TEXT_LIMITS["netns"]:
        raise InvalidRequest(f"netns must be a path of 1-{_TEXT_LIMITS['netns']} bytes")
    if "\0" in req.netns:
        raise InvalidRequest("netns must not contain NUL")
    return EndpointRecord(
        node=node,
        container_id=req.container_id,
        pod_namespace=req.pod_namespace,
        pod_name=req.pod_name,
        ip=_ip(req.ip),
        mac=_mac(req.mac, "mac"),
        host_ifname=_ifname(req.host_ifname, "host_ifname"),
        host_ifindex=req.host_ifindex,
        host_mac=_mac(req.host_mac, "host_mac"),
        netns=req.netns,
        ifname=_ifname(req.ifname, "ifname"),
    )


# --- the registry -----------------------------------------------------------------------------


class Registry:
    """The endpoints node-loader has realized on this node, by container id."""

    def __init__(self, records: Iterable[EndpointRecord] = ()) -> None:
        self._records = {r.container_id: r for r in records}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, container_id: str) -> EndpointRecord | None:
        return self._records.get(container_id)

    def all(self) -> list[EndpointRecord]:
        return sorted(self._records.values(), key=lambda r: r.container_id)

    def set(self, record: EndpointRecord) -> None:
        self._records[record.container_id] = record

    def remove(self, container_id: str) -> None:
        self._records.pop(container_id, None)

    def replace_all(self, records: Iterable[EndpointRecord]) -> None:
        self._records = {r.container_id: r for r in records}


@dataclass(frozen=True, slots=True)
class Admission:
    """How a registration is realized: first remove `evict`, then ensure `record`."""

    record: EndpointRecord
    evict: tuple[EndpointRecord, ...]
    unchanged: bool  # the registry already holds exactly this record


def admission_links(registry: Registry, record: EndpointRecord) -> set[int]:
    """The links `admit` looks at: the new veth, and those of endpoints it could conflict
    with (same veth or same IP). Asking the kernel for these alone keeps a registration's
    cost independent of how many pods the node runs."""
    wanted = {record.host_ifindex}
    for other in registry.all():
        if other.host_ifindex == record.host_ifindex or other.ip == record.ip:
            wanted.add(other.host_ifindex)
    current = registry.get(record.container_id)
    if current is not None:
        wanted.add(current.host_ifindex)
    return wanted


def admit(registry: Registry, record: EndpointRecord, links: Mapping[int, str]) -> Admission:
    """Decide a registration against the registry and the node's links (InvalidRequest when it
    cannot be realized as asked)."""
    actual = links.get(record.host_ifindex)
    if actual != record.host_ifname:
        where = f"; ifindex {record.host_ifindex} is {actual!r}" if actual else ""
        raise InvalidRequest(
            f"host veth {record.host_ifname!r} (ifindex {record.host_ifindex}) is not in the "
            f"node's network namespace{where}"
        )
    current = registry.get(record.container_id)
    evict: list[EndpointRecord] = []
    if current is not None and current.host_ifindex != record.host_ifindex:
        evict.append(current)  # re-added on a new veth: the old one's entries go
    for other in registry.all():
        if other.container_id == record.container_id:
            continue
        same_veth = other.host_ifindex == record.host_ifindex
        if not same_veth and other.ip != record.ip:
            continue
        if links.get(other.host_ifindex) != other.host_ifname:
            evict.append(other)  # its veth is gone: a leftover, not a conflict
            continue
        what = f"veth {record.host_ifname}" if same_veth else f"IP {record.ip}"
        raise InvalidRequest(
            f"{what} already belongs to endpoint {other.container_id} "
            f"({other.pod_namespace}/{other.pod_name}); delete that endpoint first"
        )
    return Admission(record, tuple(evict), unchanged=current == record)


# --- reconciliation ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ensure:
    """Make `record` fully realized: map entries, both hooks, and (if `write_kv`) its KV key."""

    record: EndpointRecord
    write_kv: bool
    problems: tuple[str, ...]  # empty: everything was intact (a re-adoption)

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Purge:
    """Remove what is stale: filters and map entries on `ifindex` (None: nothing in the kernel)
    and the KV keys of `container_ids`."""

    ifindex: int | None
    container_ids: tuple[str, ...]
    reason: str


Action = Ensure | Purge


def plan_reconcile(
    *,
    kv: Mapping[str, EndpointRecord | None],
    links: Mapping[int, str],
    realized: Mapping[int, Realized],
    hooked: set[int],
) -> list[Action]:
    """The actions that make KV, veths and pinned maps agree; purges come before ensures.

    `kv` maps this node's container ids to their records (None: the value is undecodable). An
    endpoint is live when its veth exists under the same ifindex and name. For each veth the
    maps' record wins over KV's (the kernel holds what is realized); KV fills in what the maps
    lost. A container claimed on two live veths keeps the one KV names (else the newest).
    """
    records = {cid: r for cid, r in kv.items() if r is not None}

    def live(r: EndpointRecord) -> bool:
        return links.get(r.host_ifindex) == r.host_ifname

    # Who owns each ifindex that the maps or KV mention: the maps' record if its veth is live,
    # else a live KV record for it.
    claims: dict[int, list[EndpointRecord]] = {}
    for ifindex, held in realized.items():
        claims.setdefault(ifindex, [])
        if held.record is not None:
            claims[ifindex].append(held.record)
    for rec in records.values():
        claims.setdefault(rec.host_ifindex, []).append(rec)
    owner: dict[int, EndpointRecord] = {}
    for ifindex, candidates in claims.items():
        alive = [c for c in candidates if live(c)]
        if alive:
            owner[ifindex] = alive[0]

    # One veth per container.
    by_container: dict[str, list[int]] = {}
    for ifindex, rec in owner.items():
        by_container.setdefault(rec.container_id, []).append(ifindex)
    for cid, ifindexes in by_container.items():
        if len(ifindexes) > 1:
            named = records.get(cid)
            keep = named.host_ifindex if named and named.host_ifindex in ifindexes else None
            keep = keep if keep is not None else max(ifindexes)
            for ifindex in ifindexes:
                if ifindex != keep:
                    del owner[ifindex]
    owned = {rec.container_id for rec in owner.values()}

    purges: list[Action] = []
    ensures: list[Action] = []
    for ifindex in sorted(claims):
        stale = sorted(_stale_kv(claims[ifindex], owned, kv))
        mine = owner.get(ifindex)
        if mine is None:
            in_kernel = ifindex in realized or ifindex in hooked
            if in_kernel or stale:
                reason = "veth gone" if ifindex not in links else "no live endpoint on this link"
                purges.append(Purge(ifindex if in_kernel else None, tuple(stale), reason))
            continue
        if stale:
            reason = f"ifindex {ifindex} now serves {mine.container_id}"
            purges.append(Purge(None, tuple(stale), reason))
        in_kv = kv.get(mine.container_id)
        ensures.append(_ensure(mine, in_kv, realized.get(ifindex), ifindex in hooked))
    for cid, value in sorted(kv.items()):
        if value is None and cid not in owned:
            purges.append(Purge(None, (cid,), "undecodable KV value"))
    for ifindex in sorted(hooked - set(claims)):
        purges.append(Purge(ifindex, (), "Weir filters on a link with no endpoint"))
    return purges + ensures


def _stale_kv(
    candidates: list[EndpointRecord], owned: set[str], kv: Mapping[str, EndpointRecord | None]
) -> set[str]:
    """KV keys among `candidates` that no live endpoint owns."""
    return {
        c.container_id for c in candidates if c.container_id not in owned and c.container_id in kv
    }


def _ensure(
    record: EndpointRecord, in_kv: EndpointRecord | None, realized: Realized | None, hooked: bool
) -> Ensure:
    problems = []
    if realized is None:
        problems.append("map entries missing")
    elif realized.record != record:
        problems.append("map entries differ")
    elif not realized.complete:
        problems.append("counters missing")
    if not hooked:
        problems.append("programs not attached")
    if in_kv is None:
        problems.append("KV key missing")
    elif in_kv != record:
        problems.append("KV value differs")
    return Ensure(record, write_kv=in_kv != record, problems=tuple(problems))
