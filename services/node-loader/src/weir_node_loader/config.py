"""node-loader's settings (WEIR_<SETTING>, --<setting>, or the config file)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from weir import endpoint_api
from weir.config import ConfigError, ServiceConfig, setting

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True, kw_only=True)
class NodeLoaderConfig(ServiceConfig):
    node_name: str = setting("", "the Kubernetes Node this loader serves (required)")
    netns: str = setting(
        "",
        "the node's network namespace: empty for this process's own (a hostNetwork pod), "
        "else a name under /run/netns or a path",
    )
    bpf_root: str = setting("/sys/fs/bpf/weir", "bpffs directory; pins go to <bpf_root>/<node>/")
    bpf_dir: str = setting("", "directory holding lxc.c and lib/; empty: the bpf/ of this tree")
    socket_path: str = setting(endpoint_api.DEFAULT_SOCKET, "unix socket of the endpoint API")
    cni_conf_dir: str = setting("/etc/cni/net.d", "where to write 05-weir.conflist")
    ipam_dir: str = setting("/var/lib/weir/ipam", "IPAM data directory named in the conflist")
    mtu: int = setting(1500, "pod interface MTU named in the conflist")
    kubeconfig: str = setting(
        "", "kubeconfig file; empty: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config"
    )
    resync_seconds: float = setting(60.0, "period of the full endpoint and route reconcile")
    require_policy: bool = setting(
        True,
        "a registration (CNI ADD) waits for the pod's policy in weir-policy and fails (503) "
        "without it; false: pods without a policy are not policed until one arrives",
    )
    policy_wait_seconds: float = setting(
        10.0, "how long a registration waits for the pod's policy before answering 503"
    )
    events_per_second: int = setting(
        200, "verdict events each CPU may report per second (0: none); counters count all"
    )
    events_burst: int = setting(400, "verdict events a CPU may report at once after a lull")
    events_unenforced: bool = setting(
        False, "also report allowed new flows of directions no policy isolates"
    )
    flow_backlog: int = setting(10000, "verdict events waiting to be published before dropping")
    ct_gc_seconds: float = setting(15.0, "period of the conntrack garbage collection")
    ct_tcp_timeout: float = setting(21600.0, "idle seconds before an established TCP flow goes")
    ct_tcp_opening_timeout: float = setting(60.0, "idle seconds for a TCP flow with no reply")
    ct_tcp_closing_timeout: float = setting(10.0, "idle seconds for a closed TCP flow (FIN/RST)")
    ct_other_timeout: float = setting(60.0, "idle seconds for UDP, ICMP and other flows")

    @property
    def pin_dir(self) -> Path:
        return Path(self.bpf_root) / self.node_name

    def check(self) -> None:
        """Settings that parse but cannot work (ConfigError names the setting)."""
        if not self.node_name:
            raise ConfigError("node_name is required (WEIR_NODE_NAME or --node-name)")
        if not _DNS_SUBDOMAIN.fullmatch(self.node_name) or len(self.node_name) > 253:
            raise ConfigError(f"node_name {self.node_name!r} is not a Kubernetes node name")
        if not 576 <= self.mtu <= 65535:
            raise ConfigError(f"mtu {self.mtu} must be from 576 to 65535")
        if self.resync_seconds <= 0:
            raise ConfigError("resync_seconds must be positive")
        if self.policy_wait_seconds <= 0:
            raise ConfigError("policy_wait_seconds must be positive")
        if not 0 <= self.events_per_second <= 1_000_000_000:
            raise ConfigError("events_per_second must be from 0 to 1e9")
        if self.events_burst < 1:
            raise ConfigError("events_burst must be at least 1")
        if self.ct_gc_seconds <= 0:
            raise ConfigError("ct_gc_seconds must be positive")
        timeouts = (
            self.ct_tcp_timeout,
            self.ct_tcp_opening_timeout,
            self.ct_tcp_closing_timeout,
            self.ct_other_timeout,
        )
        if min(timeouts) <= 0:
            raise ConfigError("conntrack timeouts must be positive")
