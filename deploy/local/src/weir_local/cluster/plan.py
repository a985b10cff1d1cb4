"""What a local cluster runs: every process, its command line, environment and readiness probe.

Pure: the supervisor executes a plan; tests read one. Service names and their order live here
once — infrastructure first (NATS, the API server), then the services that need both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from weir_local.cluster.network import NodeNet, node_nets

SERVICES = (
    "k8s-watcher",
    "identity-allocator",
    "policy-compiler",
    "lb-programmer",
    "bandwidth-manager",
)
NODE_SERVICES = ("node-loader",)
NODE_AGENTS = (*NODE_SERVICES, "kubelet")
BPF_ROOT = Path("/sys/fs/bpf/weir")


def cluster_id(state_dir: Path) -> str:
    """A short id naming the cluster's namespaces and pins: two clusters (a demo and a test
    run, say) on one machine never collide."""
    return "w" + hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:5]


@dataclass(frozen=True)
class Probe:
    """Readiness: an HTTP URL answering 200, or a TCP port accepting connections."""

    http: str = ""
    tcp: int = 0


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]
    probe: Probe
    env: dict[str, str] = field(default_factory=dict)
    log: str = ""  # file name under the state dir's logs/


@dataclass(frozen=True)
class Ports:
    nats: int
    api: int
    health: dict[str, int]  # component name -> health port


@dataclass(frozen=True)
class Plan:
    state_dir: Path
    bin_dir: Path
    nodes: tuple[str, ...]
    ports: Ports

    @property
    def cluster_id(self) -> str:
        return cluster_id(self.state_dir)

    @property
    def node_nets(self) -> tuple[NodeNet, ...]:
        return node_nets(self.cluster_id, self.nodes)

    @property
    def bpf_root(self) -> Path:
        return BPF_ROOT / self.cluster_id

    def node_dir(self, node: str) -> Path:
        return self.state_dir / "nodes" / node

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports.nats}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def infrastructure(self) -> list[Component]:
        return [
            Component(
                name="nats",
                argv=(
                    str(self.bin_dir / "nats-server"),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.ports.nats),
                    "-js",
                    "-sd",
                    str(self.state_dir / "nats"),
                ),
                probe=Probe(tcp=self.ports.nats),
                log="nats.log",
            ),
            Component(
                name="apiserver",
                argv=(
                    str(self.bin_dir / "weir-local-apiserver"),
                    "--state-dir",
                    str(self.state_dir / "apiserver"),
                    "--port",
                    str(self.ports.api),
                    # Frequent bookmarks keep every informer's resourceVersion current, so
                    # `weir status --wait-converged` answers promptly when nothing changes.
                    "--bookmark-interval",
                    "1",
                ),
                probe=Probe(http=f"{self.api_url}/readyz"),
                log="apiserver.log",
            ),
        ]

    def services(self) -> list[Component]:
        out = []
        for name in SERVICES:
            env = self._service_env(name)
            if name == "k8s-watcher":
                env["WEIR_KUBECONFIG"] = str(self.kubeconfig)
            out.append(self._service(name, name, env))
        for node in self.node_nets:
            out += [self._node_loader(node), self._kubelet(node)]
        return out

    def _node_loader(self, node: NodeNet) -> Component:
        name = f"node-loader/{node.name}"
        here = self.node_dir(node.name)
        env = self._service_env(name) | {
            "WEIR_NODE_NAME": node.name,
            "WEIR_NETNS": node.netns,
            "WEIR_BPF_ROOT": str(self.bpf_root),
            "WEIR_SOCKET_PATH": str(here / "node-loader.sock"),
            "WEIR_CNI_CONF_DIR": str(here / "cni" / "net.d"),
            "WEIR_IPAM_DIR": str(here / "ipam"),
            "WEIR_KUBECONFIG": str(self.kubeconfig),
        }
        return self._service(name, "node-loader", env)

    def _kubelet(self, node: NodeNet) -> Component:
        name = f"kubelet/{node.name}"
        here = self.node_dir(node.name)
        port = self.ports.health[name]
        return Component(
            name=name,
            argv=(
                str(self.bin_dir / "weir-local-kubelet"),
                "--node-name",
                node.name,
                "--kubeconfig",
                str(self.kubeconfig),
                "--node-netns",
                node.netns,
                "--netns-prefix",
                self.cluster_id,
                "--internal-ip",
                node.internal_ip,
                "--pod-cidr",
                node.pod_cidr,
                "--cni-bin-dir",
                str(self.bin_dir),
                "--cni-conf-dir",
                str(here / "cni" / "net.d"),
                "--state-dir",
                str(here / "kubelet"),
                "--health-port",
                str(port),
            ),
            probe=Probe(http=f"http://127.0.0.1:{port}/readyz"),
            log=name.replace("/", "-") + ".log",
        )

    def components(self) -> list[Component]:
        return self.infrastructure() + self.services()

    def _service_env(self, component: str) -> dict[str, str]:
        return {
            "WEIR_NATS_URL": self.nats_url,
            "WEIR_HEALTH_HOST": "127.0.0.1",
            "WEIR_HEALTH_PORT": str(self.ports.health[component]),
            "WEIR_LOG_FORMAT": "text",
        }

    def _service(self, component: str, program: str, env: dict[str, str]) -> Component:
        port = self.ports.health[component]
        return Component(
            name=component,
            argv=(str(self.bin_dir / f"weir-{program}"),),
            probe=Probe(http=f"http://127.0.0.1:{port}/readyz"),
            env=env,
            log=component.replace("/", "-") + ".log",
        )


def health_port_names(nodes: tuple[str, ...]) -> list[str]:
    """Every component that serves a health port, for port allocation."""
    return list(SERVICES) + [f"{s}/{n}" for n in nodes for s in NODE_AGENTS]


def kubeconfig_yaml(api_url: str) -> str:
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: weir-dev\n  cluster:\n    server: {api_url}\n"
        "users:\n- name: weir-dev\n  user: {}\n"
        "contexts:\n"
        "- name: weir-dev\n  context:\n    cluster: weir-dev\n    user: weir-dev\n"
        "    namespace: default\n"
        "current-context: weir-dev\n"
    )
