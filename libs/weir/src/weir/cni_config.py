"""The CNI network configuration for Weir: what node-loader writes, what weir-cni reads.

node-loader writes the node's conflist (CNI spec 1.0) once it knows the node's podCIDR; a
container runtime finds it in its CNI config directory and hands the `weir-cni` entry to the
plugin on stdin, with `name` and `cniVersion` added. Stdlib only: the plugin imports this.

    {"cniVersion": "1.0.0", "name": "weir", "plugins": [{
        "type": "weir-cni", "nodeLoaderSocket": "/var/run/weir/node-loader.sock",
        "mtu": 1500, "gateway": "169.254.1.1",
        "ipam": {"subnet": "10.244.1.0/24", "dataDir": "/var/lib/weir/ipam"}}]}
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

NETWORK_NAME = "weir"
PLUGIN_TYPE = "weir-cni"
CNI_VERSION = "1.0.0"
CONFLIST_NAME = "05-weir.conflist"
# Every pod's default gateway: a link-local address on each host-side veth, so the pod's ARP
# for its gateway is answered by the node and no per-node gateway IP is spent from the podCIDR.
GATEWAY = "169.254.1.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginConfig:
    node_loader_socket: str
    subnet: str
    ipam_data_dir: str
    gateway: str = GATEWAY
    mtu: int = 1500


def conflist(cfg: PluginConfig) -> dict[str, Any]:
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": PLUGIN_TYPE,
                "nodeLoaderSocket": cfg.node_loader_socket,
                "mtu": cfg.mtu,
                "gateway": cfg.gateway,
                "ipam": {"subnet": cfg.subnet, "dataDir": cfg.ipam_data_dir},
            }
        ],
    }


def parse_plugin_config(netconf: dict[str, Any]) -> PluginConfig:
    """The plugin's settings from its network config; ValueError names what is wrong."""
    ipam = netconf.get("ipam")
    if not isinstance(ipam, dict):
        raise ValueError("ipam must be an object with subnet and dataDir")
    socket, subnet, data_dir = (
        netconf.get("nodeLoaderSocket"),
        ipam.get("subnet"),
        ipam.get("dataDir"),
    )
    for name, value in (
        ("nodeLoaderSocket", socket),
        ("ipam.subnet", subnet),
        ("ipam.dataDir", data_dir),
    ):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} is required")
    assert isinstance(subnet, str) and isinstance(socket, str) and isinstance(data_dir, str)
    try:
        network = ipaddress.IPv4Network(subnet)
    except ValueError as e:
        raise ValueError(f"ipam.subnet: {e}") from None
    gateway = netconf.get("gateway", GATEWAY)
    mtu = netconf.get("mtu", 1500)
    if not isinstance(gateway, str):
        raise ValueError("gateway must be an IPv4 address")
    try:
        ipaddress.IPv4Address(gateway)
    except ValueError as e:
        raise ValueError(f"gateway: {e}") from None
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 576 <= mtu <= 65535:
        raise ValueError("mtu must be an integer from 576 to 65535")
    return PluginConfig(
        node_loader_socket=socket,
        subnet=str(network),
        ipam_data_dir=data_dir,
        gateway=gateway,
        mtu=mtu,
    )
