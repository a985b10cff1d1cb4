"""The local cluster's "physical" network: node namespaces on a fabric bridge, and nothing else.

Each node is a network namespace `<cid>-<node>` whose `eth0` sits on a bridge in the fabric
namespace `<cid>-fabric`, with the node's InternalIP and IP forwarding on (it routes for its
pods). Every link is created directly inside the namespaces it joins — `ip -n <fabric> link add
… peer … netns <node>` — so the machine's own namespace is never touched, and nothing is linked
to its uplink. Pod namespaces (`<cid>-<pod uid>`, made by the local kubelet) share the prefix,
so teardown removes every namespace of a cluster by name.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
FABRIC_SUBNET = ipaddress.IPv4Network("172.18.0.0/24")
POD_SUPERNET = ipaddress.IPv4Network("10.244.0.0/16")


class NetworkError(Exception):
    """An `ip` command failed; the message carries its stderr."""


def run_ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class NodeNet:
    """One node's place on the fabric."""

    name: str
    index: int  # 1-based
    netns: str
    internal_ip: str
    pod_cidr: str
    fabric_port: str  # the bridge port in the fabric namespace


def node_nets(cluster_id: str, names: tuple[str, ...]) -> tuple[NodeNet, ...]:
    hosts = list(FABRIC_SUBNET.hosts())
    pod_subnets = list(POD_SUPERNET.subnets(new_prefix=24))
    return tuple(
        NodeNet(
            name=name,
            index=i,
            netns=f"{cluster_id}-{name}",
            internal_ip=str(hosts[i]),  # .1 stays free, as a gateway would be
            pod_cidr=str(pod_subnets[i]),
            fabric_port=f"n{i}",
        )
        for i, name in enumerate(names, start=1)
    )


def fabric_netns(cluster_id: str) -> str:
    return f"{cluster_id}-fabric"


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create(cluster_id: str, nodes: tuple[NodeNet, ...]) -> None:
    """Make the fabric and every node namespace (idempotent per namespace)."""
    fabric = fabric_netns(cluster_id)
    if not netns_exists(fabric):
        run_ip("netns", "add", fabric)
        run_ip("-n", fabric, "link", "set", "lo", "up")
        run_ip("-n", fabric, "link", "add", "br0", "type", "bridge")
        run_ip("-n", fabric, "link", "set", "br0", "up")
    for node in nodes:
        if netns_exists(node.netns):
            continue
        run_ip("netns", "add", node.netns)
        run_ip("-n", node.netns, "link", "set", "lo", "up")
        run_ip(
            "-n",
            fabric,
            "link",
            "add",
            node.fabric_port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            node.netns,
        )
        run_ip("-n", fabric, "link", "set", node.fabric_port, "master", "br0", "up")
        run_ip(
            "-n",
            node.netns,
            "addr",
            "add",
            f"{node.internal_ip}/{FABRIC_SUBNET.prefixlen}",
            "dev",
            "eth0",
        )
        run_ip("-n", node.netns, "link", "set", "eth0", "up")
        # The node routes for its pods. (sysctl inside `ip netns exec` touches only that
        # namespace's /proc/sys/net.)
        result = subprocess.run(
            ["ip", "netns", "exec", node.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise NetworkError(f"ip_forward in {node.netns}: {result.stderr.strip()}")


def namespaces_of(cluster_id: str) -> list[str]:
    """Every network namespace of the cluster: fabric, nodes and pods."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{cluster_id}-"))


def destroy(cluster_id: str) -> list[str]:
    """Delete every namespace of the cluster (their links go with them); returns their names."""
    removed = []
    for name in namespaces_of(cluster_id):
        try:
            run_ip("netns", "del", name)
            removed.append(name)
        except NetworkError:
            if not netns_exists(name):
                removed.append(name)  # gone meanwhile: what matters is that it is gone
            else:
                raise
    return removed
