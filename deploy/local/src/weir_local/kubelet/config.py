"""The local kubelet's settings: its command-line flags, checked once at start."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from weir_local.apiserver._k8s_names import dns1123_subdomain


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeletConfig:
    node_name: str
    kubeconfig: Path
    node_netns: str  # name under netns_dir of the node's network namespace
    netns_prefix: str  # pod namespaces are <prefix>-<pod uid> (may be shared across nodes)
    internal_ip: str
    pod_cidr: str
    cni_bin_dirs: tuple[Path, ...]
    cni_conf_dir: Path
    state_dir: Path
    health_port: int = 0
    health_host: str = "127.0.0.1"
    log_level: str = "info"
    log_format: str = "text"
    netns_dir: Path = Path("/run/netns")
    # Pods reconciled at once, and CNI plugin executions at once (each is a process).
    workers: int = 32
    max_parallel_cni: int = 8
    cni_timeout: float = 120.0  # the kubelet's runtime request timeout
    heartbeat: float = 10.0  # nodeStatusUpdateFrequency
    resync: float = 60.0  # full re-check of every pod and sandbox
    network_poll: float = 1.0  # how often the CNI config directory is looked at

    @property
    def node_netns_path(self) -> Path:
        return self.netns_dir / self.node_netns

    @property
    def sandbox_dir(self) -> Path:
        return self.state_dir / "sandboxes"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="weir-local-kubelet",
        description="Run the pods bound to one local node: network namespaces wired by CNI, "
        "every declared port answered with the pod's name.",
    )
    p.add_argument("--node-name", required=True)
    p.add_argument("--kubeconfig", required=True, type=Path)
    p.add_argument("--node-netns", required=True, help="name under /run/netns of the node")
    p.add_argument("--netns-prefix", required=True, help="pod netns are <prefix>-<pod uid>")
    p.add_argument("--internal-ip", required=True)
    p.add_argument("--pod-cidr", required=True)
    p.add_argument(
        "--cni-bin-dir", required=True, help="where CNI plugins live (':'-separated list)"
    )
    p.add_argument("--cni-conf-dir", required=True, type=Path)
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--health-port", type=int, default=0)
    p.add_argument("--health-host", default="127.0.0.1")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--workers", type=int, default=32, help="pods reconciled at once")
    p.add_argument("--max-parallel-cni", type=int, default=8, help="CNI executions at once")
    p.add_argument("--heartbeat", type=float, default=10.0, help="node status period (s)")
    p.add_argument("--resync", type=float, default=60.0, help="full re-check period (s)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> KubeletConfig:
    p = parser()
    a = p.parse_args(argv)
    if dns1123_subdomain(a.node_name):
        p.error(f"--node-name {a.node_name!r} is not a DNS subdomain")
    for flag, value in (("--node-netns", a.node_netns), ("--netns-prefix", a.netns_prefix)):
        if not value or "/" in value or value in (".", ".."):
            p.error(f"{flag} must be a plain file name")
    try:
        ip = ipaddress.IPv4Address(a.internal_ip)
        cidr = ipaddress.IPv4Network(a.pod_cidr)
    except ValueError as e:
        p.error(str(e))
    if a.workers < 1 or a.max_parallel_cni < 1 or a.heartbeat <= 0 or a.resync <= 0:
        p.error("--workers, --max-parallel-cni, --heartbeat and --resync must be positive")
    return KubeletConfig(
        node_name=a.node_name,
        kubeconfig=a.kubeconfig,
        node_netns=a.node_netns,
        netns_prefix=a.netns_prefix,
        internal_ip=str(ip),
        pod_cidr=str(cidr),
        cni_bin_dirs=tuple(Path(d) for d in a.cni_bin_dir.split(":") if d),
        cni_conf_dir=a.cni_conf_dir,
        state_dir=a.state_dir,
        health_port=a.health_port,
        health_host=a.health_host,
        log_level=a.log_level,
        log_format=a.log_format,
        workers=a.workers,
        max_parallel_cni=a.max_parallel_cni,
        heartbeat=a.heartbeat,
        resync=a.resync,
    )
