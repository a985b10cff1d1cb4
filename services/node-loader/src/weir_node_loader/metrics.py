"""node-loader's Prometheus metrics, registered in the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.endpoints = Gauge(
            "weir_node_loader_endpoints", "Endpoints realized on this node", registry=registry
        )
        self.registrations = Counter(
            "weir_node_loader_endpoint_registrations",
            "Endpoint registrations (PUT) that succeeded, by outcome: created, updated, unchanged",
            ["outcome"],
            registry=registry,
        )
        self.deletions = Counter(
            "weir_node_loader_endpoint_deletions",
            "Endpoints removed on request (DELETE of a registered endpoint)",
            registry=registry,
        )
        self.datapath_errors = Counter(
            "weir_node_loader_datapath_errors",
            "Failed datapath operations, by reason (bpf, netlink, link_gone, conflict, kv, ...)",
            ["reason"],
            registry=registry,
        )
        self.reconcile = Counter(
            "weir_node_loader_reconcile_actions",
            "Endpoint reconciliation actions: adopted (intact), repaired, removed (stale)",
            ["action"],
            registry=registry,
        )
        self.hooks = Counter(
            "weir_node_loader_hook_attachments",
            "tc hook attachments, by direction and outcome: adopted, added, replaced",
            ["direction", "outcome"],
            registry=registry,
        )
        self.routes = Counter(
            "weir_node_loader_route_actions",
            "Route reconciliation actions toward other nodes' pods: added, replaced, deleted",
            ["action"],
            registry=registry,
        )
        self.cni_config_writes = Counter(
            "weir_node_loader_cni_config_writes",
            "Writes of the node's CNI conflist (only when its content changes)",
            registry=registry,
        )
