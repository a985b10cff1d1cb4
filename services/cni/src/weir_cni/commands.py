"""ADD, DEL, CHECK, GC and STATUS: the order things are made and unmade in.

ADD: address (IPAM) -> veth pair and both ends' addresses and routes -> node-loader PUT, which
answers only once the endpoint's datapath is in place. Any failure undoes all of it, in
reverse, so a failed ADD leaves nothing behind and a retry starts clean.

DEL: node-loader DELETE -> host veth (its peer and the node route go with it) -> address.
Anything already gone counts as done. A node-loader that is down does not block DEL: it
reconciles its endpoints against the node's veths when it starts; one that answers with an
error does, before anything local is touched, so the runtime's retry finds the same state.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import sys
from collections.abc import Mapping
from typing import Any

from weir.endpoint_api import EndpointRequest

from . import errors, ipam, links, names, nodeloader
from .errors import CniError
from .invocation import Invocation
from .result import Attached, Expected, expected, render

# ioctl(2) on a namespace file: which kind of namespace it is (Linux 4.11+).
_NS_GET_NSTYPE = 0xB703
_CLONE_NEWNET = 0x40000000
# Rollback and GC calls to node-loader are best effort; they must not hold a failed ADD long.
CLEANUP_TIMEOUT_S = 5.0
# GC keeps allocations this young even when the runtime's list lacks them: they may belong to
# an ADD still in flight, which the runtime's list could not know about yet.
GC_GRACE_S = 60.0


def warn(message: str) -> None:
    """Runtimes keep a plugin's stderr in their logs; stdout is reserved for the result."""
    print(f"weir-cni: {message}", file=sys.stderr)


def _store(inv: Invocation) -> ipam.Store:
    cfg = inv.plugin
    return ipam.Store(cfg.ipam_data_dir, cfg.subnet, reserved=[cfg.gateway])


def _client(inv: Invocation, timeout: float = nodeloader.TIMEOUT_S) -> nodeloader.Client:
    return nodeloader.Client(inv.plugin.node_loader_socket, timeout=timeout)


def check_netns(path: str) -> None:
    """CNI_NETNS must name an existing network namespace other than the node's own."""
    if any(c.isspace() or c in "\"'\\" for c in path):
        # It is passed on an `ip -batch` line, which splits on whitespace.
        raise CniError(errors.INVALID_ENV, f"CNI_NETNS {path!r} contains whitespace or quotes")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CniError(
            errors.UNKNOWN_CONTAINER, f"network namespace {path} does not exist"
        ) from None
    except OSError as e:
        raise CniError(errors.INVALID_ENV, f"cannot open CNI_NETNS {path}", str(e)) from None
    try:
        try:
            kind = fcntl.ioctl(fd, _NS_GET_NSTYPE)
        except OSError:
            kind = 0  # not a namespace file at all
        if kind != _CLONE_NEWNET:
            raise CniError(errors.INVALID_ENV, f"CNI_NETNS {path} is not a network namespace")
        if os.fstat(fd).st_ino == os.stat("/proc/self/ns/net").st_ino:
            # Wiring "the pod" here would replace the node's own default route.
            raise CniError(errors.INVALID_ENV, f"CNI_NETNS {path} is the node's own namespace")
    finally:
        os.close(fd)


def _wiring(inv: Invocation, ip: str) -> links.Wiring:
    cid = inv.container_id
    return links.Wiring(
        netns=inv.netns,
        ifname=inv.ifname,
        host_ifname=names.host_ifname(cid),
        ip=ip,
        gateway=inv.plugin.gateway,
        mtu=inv.plugin.mtu,
        pod_mac=names.pod_mac(cid),
        host_mac=names.host_mac(cid),
    )


def _pod_side_is_ours(w: links.Wiring) -> bool:
    """Is the existing host veth's pod end the one this container's ADD made?"""
    try:
        out = links.batch([f"link show dev {w.ifname}"], netns=w.netns, as_json=True)
    except links.IpError:
        return False
    return any(
        link.get("address") == w.pod_mac for doc in links.json_documents(out) for link in doc
    )


def _register(client: nodeloader.Client, request: EndpointRequest) -> None:
    try:
        response = client.put_endpoint(request)
    except nodeloader.Unreachable as e:
        raise CniError(
            errors.TRY_AGAIN_LATER, "node-loader is not reachable; try again later", str(e)
        ) from None
    if response.status == 503:
        raise CniError(
            errors.TRY_AGAIN_LATER,
            "node-loader is not ready yet; try again later",
            response.message(),
        )
    if not response.ok:
        raise CniError(
            errors.NODE_LOADER_FAILED,
            f"node-loader refused endpoint {request.container_id} (HTTP {response.status})",
            response.message(),
        )


def add(inv: Invocation) -> dict[str, Any]:
    check_netns(inv.netns)
    store = _store(inv)
    allocation = store.allocate(inv.container_id, inv.ifname)
    w = _wiring(inv, allocation.ip)
    registering = False
    try:
        if links.ifindex(w.host_ifname) is not None and not _pod_side_is_ours(w):
            # A leftover from an ADD that was killed half-way: start that pair afresh.
            links.delete_host(w.host_ifname)
        if links.ifindex(w.host_ifname) is None:
            links.create(w)
        else:
            links.configure_host(w)  # the same pair again: a repeated ADD
        links.configure_pod(w)
        host_index = links.ifindex(w.host_ifname)
        if host_index is None:
            raise CniError(errors.LINK_FAILED, f"{w.host_ifname} vanished while being set up")
        registering = True
        _register(
            _client(inv),
            EndpointRequest(
                container_id=inv.container_id,
                pod_namespace=inv.args["K8S_POD_NAMESPACE"],
                pod_name=inv.args["K8S_POD_NAME"],
                ip=w.ip,
                mac=w.pod_mac,
                host_ifname=w.host_ifname,
                host_ifindex=host_index,
                host_mac=w.host_mac,
                netns=inv.netns,
                ifname=inv.ifname,
                # The local kubelet (and every CRI runtime) sends it: node-loader waits for the
                # policy of this very pod, not of an older one with the same name.
                pod_uid=inv.args.get("K8S_POD_UID", ""),
            ),
        )
    except BaseException:
        # Even a registration that timed out may have reached node-loader: undo it too.
        _roll_back(inv, w, unregister=registering)
        raise
    dns = inv.netconf.get("dns")
    attached = Attached(
        ip=w.ip,
        gateway=w.gateway,
        host_ifname=w.host_ifname,
        host_mac=w.host_mac,
        ifname=w.ifname,
        pod_mac=w.pod_mac,
        netns=inv.netns,
    )
    return render(inv.cni_version, attached, dns if isinstance(dns, dict) else None)


def _roll_back(inv: Invocation, w: links.Wiring, unregister: bool) -> None:
    """Undo a failed ADD, newest first; report but survive each step's own failure."""
    if unregister:
        try:
            _client(inv, CLEANUP_TIMEOUT_S).delete_endpoint(inv.container_id)
        except nodeloader.Unreachable as e:
            warn(f"rollback: node-loader DELETE {inv.container_id}: {e}")
    try:
        links.delete_host(w.host_ifname)
    except CniError as e:
        warn(f"rollback: {e.msg}: {e.details}")
    try:
        _store(inv).release(inv.container_id, inv.ifname)
    except CniError as e:
        warn(f"rollback: {e.msg}: {e.details}")


def delete(inv: Invocation) -> None:
    cid = inv.container_id
    try:
        response = _client(inv).delete_endpoint(cid)
    except nodeloader.Unreachable as e:
        warn(f"node-loader unreachable, it will drop {cid} when it reconciles: {e}")
    else:
        if response.status == 503:
            warn(f"node-loader not ready, it will drop {cid} when it reconciles")
        elif response.status not in (200, 404):
            raise CniError(
                errors.NODE_LOADER_FAILED,
                f"node-loader could not remove endpoint {cid} (HTTP {response.status})",
                response.message(),
            )
    links.delete_host(names.host_ifname(cid))
    _store(inv).release(cid, inv.ifname)


def _route_key(dst: str) -> str:
    """A CNI route dst as `ip -j route` prints it: `default`, a bare /32 address, or a CIDR."""
    net = ipaddress.ip_network(dst, strict=False)
    if net.prefixlen == 0:
        return "default"
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def _link_problems(link: Mapping[str, Any], name: str, mac: str | None) -> list[str]:
    """A link that is down, or whose MAC is not the one prevResult recorded (if any)."""
    problems = []
    if mac and link.get("address") != mac:
        problems.append(f"{name} has MAC {link.get('address')}, prevResult says {mac}")
    if "UP" not in link.get("flags", []):
        problems.append(f"{name} is down")
    return problems


def _check_pod(inv: Invocation, want: Expected, gateway: str) -> list[str]:
    pod = links.snapshot(inv.netns)
    ifname = inv.ifname
    link = pod.link(ifname)
    if link is None:
        return [f"{ifname} is missing in {inv.netns}"]
    problems = _link_problems(link, ifname, want.pod_mac)
    if not pod.has_addr(ifname, want.ip, want.prefix):
        problems.append(f"{ifname} lacks address {want.ip}/{want.prefix}")
    if not pod.has_route(gateway, ifname):
        problems.append(f"pod route {gateway} dev {ifname} scope link is missing")
    for dst, gw in want.routes:
        if not pod.has_route(_route_key(dst), ifname, gw or gateway):
            problems.append(f"pod route {dst} via {gw or gateway} dev {ifname} is missing")
    return problems


def _check_node(want: Expected, host: str, gateway: str) -> list[str]:
    node = links.snapshot(None)
    link = node.link(host)
    if link is None:
        return [f"host veth {host} is missing"]
    problems = _link_problems(link, host, want.host_mac)
    if not node.has_addr(host, gateway, 32):
        problems.append(f"{host} lacks the gateway address {gateway}/32")
    if not node.has_route(want.ip, host):
        problems.append(f"node route {want.ip}/32 dev {host} is missing")
    return problems


def _check_node_loader(inv: Invocation, want: Expected) -> list[str]:
    try:
        response = _client(inv).get_endpoint(inv.container_id)
    except nodeloader.Unreachable as e:
        raise CniError(
            errors.TRY_AGAIN_LATER, "node-loader is not reachable; try again later", str(e)
        ) from None
    if response.status == 404:
        return [f"node-loader has no endpoint {inv.container_id}"]
    if response.status == 503:
        raise CniError(errors.TRY_AGAIN_LATER, "node-loader is not ready yet", response.message())
    if not response.ok:
        return [f"node-loader answered HTTP {response.status}: {response.message()}"]
    record = response.json()
    if isinstance(record, dict) and record.get("ip") not in (None, want.ip):
        return [f"node-loader has {inv.container_id} at {record.get('ip')}, not {want.ip}"]
    return []


def check(inv: Invocation) -> None:
    assert inv.prev_result is not None  # invocation.parse insists for CHECK
    want = expected(inv.prev_result, inv.ifname)
    check_netns(inv.netns)
    host = want.host_ifname or names.host_ifname(inv.container_id)
    gateway = want.gateway or inv.plugin.gateway
    problems = []
    held = _store(inv).find(inv.container_id, inv.ifname)
    if held != want.ip:
        problems.append(
            f"IPAM holds {held or 'nothing'} for {inv.container_id}/{inv.ifname}, not {want.ip}"
        )
    problems += _check_node(want, host, gateway)
    problems += _check_pod(inv, want, gateway)
    if not problems:
        problems += _check_node_loader(inv, want)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CniError(errors.CHECK_FAILED, problems[0] + more, "; ".join(problems))


def _endpoint_ids(listing: Any) -> list[str]:
    """Container ids in node-loader's `GET /v1/endpoints` (a list, or {"endpoints": [...]})."""
    items = listing.get("endpoints", []) if isinstance(listing, Mapping) else listing
    if not isinstance(items, list):
        return []
    return [
        str(item["container_id"])
        for item in items
        if isinstance(item, Mapping) and isinstance(item.get("container_id"), str)
    ]


def gc(inv: Invocation) -> None:
    """Free what belongs to attachments the runtime no longer has (spec 1.1 GC)."""
    valid = {ipam.Owner(a.container_id, a.ifname) for a in inv.valid_attachments}
    failures: list[CniError] = []
    store = _store(inv)
    freed = store.release_all_but(valid, grace_s=GC_GRACE_S)
    live_ids = {owner.container_id for owner in store.allocations().values()}
    live_ids |= {a.container_id for a in inv.valid_attachments}
    live_hosts = {names.host_ifname(cid) for cid in live_ids}
    for name in links.host_veths():
        # Only our own naming pattern: anything else on the node is not ours to remove.
        if names.HOST_IFNAME.fullmatch(name) and name not in live_hosts:
            try:
                links.delete_host(name)
            except CniError as e:
                failures.append(e)
    client = _client(inv, CLEANUP_TIMEOUT_S)
    try:
        listing = client.list_endpoints()
        stale = [cid for cid in _endpoint_ids(listing.json()) if cid not in live_ids]
        for cid in stale:
            response = client.delete_endpoint(cid)
            if response.status not in (200, 404):
                failures.append(
                    CniError(
                        errors.NODE_LOADER_FAILED,
                        f"node-loader could not remove endpoint {cid}",
                        response.message(),
                    )
                )
    except nodeloader.Unreachable as e:
        warn(f"GC: node-loader unreachable, it reconciles its own endpoints: {e}")
    if freed:
        warn(f"GC: released {', '.join(sorted(freed))}")
    if failures:
        raise failures[0]


def status(inv: Invocation) -> None:
    """Ready for ADD when node-loader serves registrations and an address is free."""
    try:
        response = _client(inv, CLEANUP_TIMEOUT_S).healthz()
    except nodeloader.Unreachable as e:
        raise CniError(errors.NOT_AVAILABLE, "node-loader is not reachable", str(e)) from None
    if not response.ok:
        raise CniError(
            errors.NOT_AVAILABLE,
            f"node-loader is not ready (HTTP {response.status})",
            response.message(),
        )
    if _store(inv).free_count() == 0:
        raise CniError(errors.NOT_AVAILABLE, f"no free address left in {inv.plugin.subnet}")
