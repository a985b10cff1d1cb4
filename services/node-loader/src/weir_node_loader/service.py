"""The node-loader process (one per node; the only one that touches the kernel).

Its datapath is not built yet: it connects, serves health and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from weir import runtime
from weir.config import ServiceConfig, setting

CAPABILITY = "endpoints and BPF programs on pod veths arrive with the local-nodes issue"


@dataclass(frozen=True, kw_only=True)
class NodeLoaderConfig(ServiceConfig):
    node_name: str = setting("", "the Kubernetes Node this loader serves (env WEIR_NODE_NAME)")


def main() -> None:
    raise SystemExit(
        runtime.run(
            "node-loader",
            NodeLoaderConfig,
            runtime.idle(CAPABILITY),
            description="Weir node-loader (desired state into BPF maps and programs on one node)",
        )
    )
