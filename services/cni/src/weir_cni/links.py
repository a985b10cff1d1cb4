"""The pod's veth pair, addresses and routes, made with iproute2.

Why iproute2 in batch mode and not pyroute2: importing pyroute2 alone costs about 0.25 s per
plugin run, while one `ip -batch` process costs about 1.5 ms here, and an ADD needs two — one in
the node's network namespace (this process's own) and one in the pod's, entered by `nsenter
--net=CNI_NETNS` for that child only. The plugin process itself never changes namespace, so it
can only ever touch the node's namespace and the pod's.

The peer is created directly inside the pod's namespace (`peer name … netns CNI_NETNS`), never
in another one. Addresses and routes use `replace`, so configuring twice is a no-op: that is
what makes a repeated ADD safe.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from . import errors
from .errors import CniError

# A wedged `ip` must not hang the runtime's ADD forever; the runtime has its own deadline too.
TIMEOUT_S = 30.0
_FALLBACK_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
_tools: dict[str, str] = {}


class IpError(Exception):
    """iproute2 refused a command; the message is its stderr."""


def tool(name: str) -> str:
    """An executable from PATH or the usual system dirs (runtimes may pass a minimal PATH)."""
    found = _tools.get(name)
    if found:
        return found
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for directory in (*dirs, *_FALLBACK_DIRS):
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            _tools[name] = path
            return path
    raise CniError(errors.LINK_FAILED, f"{name} not found", "weir-cni needs iproute2 and nsenter")


def batch(commands: Sequence[str], netns: str | None = None, as_json: bool = False) -> str:
    """Run iproute2 commands in one process; stops at the first failure (raises IpError)."""
    argv = [tool("ip"), *(("-j",) if as_json else ()), "-batch", "-"]
    if netns is not None:
        argv = [tool("nsenter"), f"--net={netns}", *argv]
    try:
        proc = subprocess.run(
            argv,
            input="\n".join(commands) + "\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise IpError(f"ip did not finish in {TIMEOUT_S:.0f}s") from None
    except OSError as e:
        raise IpError(f"cannot run {argv[0]}: {e}") from None
    if proc.returncode != 0:
        raise IpError(proc.stderr.strip() or f"ip exited with {proc.returncode}")
    return proc.stdout


def json_documents(text: str) -> Iterator[Any]:
    """`ip -j -batch` prints one JSON document per command."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        doc, pos = decoder.raw_decode(text, pos)
        yield doc


def ifindex(name: str) -> int | None:
    """A link's index in this process's (the node's) namespace, or None; no subprocess."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


class Wiring(NamedTuple):
    """One pod's veth pair and the addresses and routes on both ends."""

    netns: str
    ifname: str
    host_ifname: str
    ip: str
    gateway: str
    mtu: int
    pod_mac: str
    host_mac: str

    def create_commands(self) -> list[str]:
        return [
            f"link add {self.host_ifname} mtu {self.mtu} address {self.host_mac} type veth"
            f" peer name {self.ifname} mtu {self.mtu} address {self.pod_mac} netns {self.netns}",
        ]

    def host_commands(self) -> list[str]:
        return [
            f"link set {self.host_ifname} mtu {self.mtu} up",
            # The gateway on every host veth: the node answers the pod's ARP for it, and no
            # address from the podCIDR is spent on a gateway.
            f"addr replace {self.gateway}/32 dev {self.host_ifname}",
            f"route replace {self.ip}/32 dev {self.host_ifname}",
        ]

    def pod_commands(self) -> list[str]:
        return [
            f"link set {self.ifname} mtu {self.mtu} up",
            f"addr replace {self.ip}/32 dev {self.ifname}",
            # The /32 leaves the pod no connected subnet: the gateway is reached by this
            # link-scope route, and everything else through it.
            f"route replace {self.gateway} dev {self.ifname} scope link",
            f"route replace default via {self.gateway} dev {self.ifname}",
        ]


def create(w: Wiring) -> None:
    """Make the pair (peer straight into the pod's namespace) and set up the host side."""
    try:
        batch([*w.create_commands(), *w.host_commands()])
    except IpError as e:
        if "File exists" in str(e) and ifindex(w.host_ifname) is None:
            # The host name was free, so the clash is inside the pod: CNI_IFNAME is taken.
            raise CniError(
                errors.IFNAME_IN_USE,
                f"{w.ifname} already exists in {w.netns}",
                str(e),
            ) from None
        raise CniError(errors.LINK_FAILED, f"cannot create veth {w.host_ifname}", str(e)) from None


def configure_host(w: Wiring) -> None:
    try:
        batch(w.host_commands())
    except IpError as e:
        raise CniError(errors.LINK_FAILED, f"cannot configure {w.host_ifname}", str(e)) from None


def configure_pod(w: Wiring) -> None:
    try:
        batch(w.pod_commands(), netns=w.netns)
    except IpError as e:
        raise CniError(
            errors.LINK_FAILED, f"cannot configure {w.ifname} in {w.netns}", str(e)
        ) from None


def delete_host(name: str) -> bool:
    """Delete a host veth (its peer and its routes go with it); False when it was not there."""
    if ifindex(name) is None:
        return False
    try:
        batch([f"link del {name}"])
    except IpError as e:
        if "Cannot find device" in str(e):
            return False  # gone meanwhile
        raise CniError(errors.LINK_FAILED, f"cannot delete {name}", str(e)) from None
    return True


def host_veths() -> list[str]:
    """Names of every veth in the node's namespace."""
    try:
        out = batch(["link show type veth"], as_json=True)
    except IpError as e:
        raise CniError(errors.LINK_FAILED, "cannot list veths", str(e)) from None
    return [link["ifname"] for doc in json_documents(out) for link in doc]


class Snapshot(NamedTuple):
    """What one namespace holds, as `ip -j` reports it (for CHECK)."""

    links: list[dict[str, Any]]
    addrs: list[dict[str, Any]]
    routes: list[dict[str, Any]]

    def link(self, name: str) -> dict[str, Any] | None:
        return next((link for link in self.links if link.get("ifname") == name), None)

    def has_addr(self, name: str, ip: str, prefix: int) -> bool:
        for link in self.addrs:
            if link.get("ifname") != name:
                continue
            for a in link.get("addr_info", []):
                if (a.get("family"), a.get("local"), a.get("prefixlen")) == ("inet", ip, prefix):
                    return True
        return False

    def has_route(self, dst: str, dev: str, gateway: str | None = None) -> bool:
        for r in self.routes:
            if r.get("dst") == dst and r.get("dev") == dev and r.get("gateway") == gateway:
                return True
        return False


def snapshot(netns: str | None) -> Snapshot:
    """Links, addresses and main-table IPv4 routes of the node (netns None) or a pod."""
    try:
        out = batch(["link show", "addr show", "route show"], netns=netns, as_json=True)
    except IpError as e:
        where = netns or "the node"
        raise CniError(errors.CHECK_FAILED, f"cannot read {where}'s network", str(e)) from None
    docs = list(json_documents(out))
    if len(docs) != 3:
        raise CniError(errors.CHECK_FAILED, "unexpected output from ip -j", out[:200])
    return Snapshot(docs[0], docs[1], docs[2])
