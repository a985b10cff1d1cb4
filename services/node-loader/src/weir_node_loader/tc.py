"""tc (clsact + cls_bpf, direct-action) on one link, through a pyroute2 IPRoute/NetNS.

Weir's filters sit at a fixed priority and handle on the clsact ingress and egress hooks, so
they can be found again after a restart and swapped in place (`replace-filter` is atomic: no
packet sees the hook empty). pyroute2 0.9 does not decode the attributes that name the program
a bpf filter runs (TCA_BPF_ID, TCA_BPF_TAG), so they are read from the raw netlink message.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from weir_node_loader.maps import Direction

CLSACT_INGRESS = 0xFFFFFFF2  # "ffff:fff2": tc ingress (packets the link receives)
CLSACT_EGRESS = 0xFFFFFFF3  # "ffff:fff3": tc egress (packets the link sends)
# On a pod's host-side veth, the link receives what the pod sends.
PARENTS: dict[Direction, int] = {
    Direction.FROM_POD: CLSACT_INGRESS,
    Direction.TO_POD: CLSACT_EGRESS,
}
FILTER_PRIO = 1  # first: later hooks (policy) must see every packet
FILTER_HANDLE = 1
NAME_PREFIX = "weir_"

# linux/pkt_cls.h, enum TCA_BPF_*
_TCA_BPF_NAME = 7
_TCA_BPF_TAG = 10
_TCA_BPF_ID = 11
_NLA_TYPE_MASK = 0x3FFF


@dataclass(frozen=True, slots=True)
class BpfFilter:
    parent: int
    prio: int
    handle: int
    name: str  # the filter's name (TCA_BPF_NAME): Weir's are weir_<hook>
    prog_id: int
    tag: str

    @property
    def is_weir(self) -> bool:
        return self.name.startswith(NAME_PREFIX)


class LinkGone(Exception):
    """The link disappeared (ENODEV) while tc was being changed."""


def _nlas(raw: bytes) -> dict[int, bytes]:
    """Netlink attributes of a nested attribute's payload: type -> value."""
    out: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(raw):
        length, kind = struct.unpack_from("=HH", raw, offset)
        if length < 4:
            break
        out[kind & _NLA_TYPE_MASK] = raw[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return out


def _options(msg: Any) -> dict[int, bytes]:
    opts = msg.get_attr("TCA_OPTIONS")
    if opts is None:
        return {}
    raw = bytes(opts.data[opts.offset : opts.offset + opts.length])
    return _nlas(raw[4:])  # skip TCA_OPTIONS' own header


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            raise LinkGone(str(e)) from None
        raise


def bpf_filters(ipr: Any, ifindex: int, parent: int) -> list[BpfFilter]:
    """The bpf filters on one clsact hook (none when there is no clsact)."""
    try:
        msgs = _call(ipr.get_filters, index=ifindex, parent=parent)
    except NetlinkError as e:
        if e.code == errno.EINVAL:  # no clsact on the link: no hook to hold filters
            return []
        raise
    found = []
    for msg in msgs:
        if msg.get_attr("TCA_KIND") != "bpf":
            continue
        opts = _options(msg)
        if _TCA_BPF_ID not in opts:
            continue  # the chain's header message, not a filter
        found.append(
            BpfFilter(
                parent=parent,
                prio=msg["info"] >> 16,
                handle=msg["handle"],
                name=opts.get(_TCA_BPF_NAME, b"").rstrip(b"\0").decode(errors="replace"),
                prog_id=struct.unpack("=I", opts[_TCA_BPF_ID][:4])[0],
                tag=opts.get(_TCA_BPF_TAG, b"").hex(),
            )
        )
    return found


def weir_filter(ipr: Any, ifindex: int, parent: int) -> BpfFilter | None:
    """The filter at Weir's priority and handle on one hook, whoever put it there."""
    for f in bpf_filters(ipr, ifindex, parent):
        if f.prio == FILTER_PRIO and f.handle == FILTER_HANDLE:
            return f
    return None


def has_clsact(ipr: Any, ifindex: int) -> bool:
    return any(q.get_attr("TCA_KIND") == "clsact" for q in _call(ipr.get_qdiscs, ifindex))


def ensure_clsact(ipr: Any, ifindex: int) -> bool:
    """Add the clsact qdisc unless present; True when it was added."""
    if has_clsact(ipr, ifindex):
        return False
    try:
        _call(ipr.tc, "add", "clsact", ifindex)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise
        return False
    return True


def set_filter(ipr: Any, ifindex: int, parent: int, *, fd: int, name: str, replace: bool) -> None:
    """Add (or atomically replace) Weir's filter on one hook, running the program `fd`."""
    _call(
        ipr.tc,
        "replace-filter" if replace else "add-filter",
        "bpf",
        ifindex,
        FILTER_HANDLE,
        fd=fd,
        name=name,
        parent=parent,
        prio=FILTER_PRIO,
        classid=1,
        direct_action=True,
    )


def delete_filter(ipr: Any, ifindex: int, parent: int) -> None:
    _call(ipr.tc, "del-filter", "bpf", ifindex, FILTER_HANDLE, parent=parent, prio=FILTER_PRIO)


def delete_clsact(ipr: Any, ifindex: int) -> None:
    _call(ipr.tc, "del", "clsact", ifindex)
