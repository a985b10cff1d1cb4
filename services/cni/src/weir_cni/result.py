"""The ADD result weir-cni prints, and what CHECK reads back out of prevResult.

A result is spoken in the config's cniVersion: 1.x results as the 1.0 spec gives them,
0.3.x/0.4.0 ones with the `version` field those put on each IP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, NamedTuple

from . import errors
from .errors import CniError
from .invocation import SUPPORTED_VERSIONS, at_least

DEFAULT_ROUTE = "0.0.0.0/0"


class Attached(NamedTuple):
    """Everything an ADD made for one pod."""

    ip: str
    gateway: str
    host_ifname: str
    host_mac: str
    ifname: str
    pod_mac: str
    netns: str


def render(version: str, a: Attached, dns: Mapping[str, Any] | None = None) -> dict[str, Any]:
    address: dict[str, Any] = {"address": f"{a.ip}/32", "gateway": a.gateway, "interface": 1}
    if not at_least(version, "1.0.0"):
        address = {"version": "4", **address}
    out: dict[str, Any] = {
        "cniVersion": version,
        # Like ptp: the host side first, then the pod's interface, which the IP points at.
        "interfaces": [
            {"name": a.host_ifname, "mac": a.host_mac},
            {"name": a.ifname, "mac": a.pod_mac, "sandbox": a.netns},
        ],
        "ips": [address],
        "routes": [{"dst": DEFAULT_ROUTE, "gw": a.gateway}],
    }
    if dns:
        out["dns"] = dict(dns)
    return out


class Expected(NamedTuple):
    """What prevResult says the pod should have (CHECK compares the kernel against it)."""

    ip: str
    prefix: int
    gateway: str | None
    pod_mac: str | None
    host_ifname: str | None
    host_mac: str | None
    routes: tuple[tuple[str, str | None], ...]  # (dst, gw)


def _invalid(msg: str) -> CniError:
    return CniError(errors.INVALID_CONFIG, f"prevResult: {msg}")


def expected(prev: Mapping[str, Any], ifname: str) -> Expected:
    """Read prevResult for the pod interface `ifname`; CniError 7 (or 1) if it cannot be used."""
    version = prev.get("cniVersion")
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise CniError(errors.INCOMPATIBLE_VERSION, f"prevResult cniVersion {version!r}")
    interfaces = prev.get("interfaces", [])
    ips = prev.get("ips")
    if not isinstance(interfaces, list) or not isinstance(ips, list):
        raise _invalid("interfaces and ips must be lists")
    pod_index = host = None
    for i, iface in enumerate(interfaces):
        if not isinstance(iface, dict):
            raise _invalid("every interface must be an object")
        if iface.get("name") == ifname and iface.get("sandbox"):
            pod_index = i
        elif not iface.get("sandbox"):
            host = iface
    if pod_index is None:
        raise _invalid(f"no interface {ifname} with a sandbox")
    pod = interfaces[pod_index]
    mine = []
    for entry in ips:
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            raise _invalid("every ip needs an address")
        if entry.get("interface", pod_index) != pod_index:
            continue
        try:
            iface_addr = ipaddress.ip_interface(entry["address"])
        except ValueError:
            raise _invalid(f"bad address {entry['address']!r}") from None
        if iface_addr.version == 4:
            mine.append((iface_addr, entry.get("gateway")))
    if len(mine) != 1:
        raise _invalid(f"expected one IPv4 address on {ifname}, found {len(mine)}")
    ((addr, gateway),) = mine
    routes = []
    for r in prev.get("routes", []) or []:
        if not isinstance(r, dict) or not isinstance(r.get("dst"), str):
            raise _invalid("every route needs a dst")
        routes.append((r["dst"], r.get("gw")))
    return Expected(
        ip=str(addr.ip),
        prefix=addr.network.prefixlen,
        gateway=gateway if isinstance(gateway, str) else None,
        pod_mac=pod.get("mac"),
        host_ifname=host.get("name") if host else None,
        host_mac=host.get("mac") if host else None,
        routes=tuple(routes),
    )
