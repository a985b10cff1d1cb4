"""node-loader's Prometheus metrics, registered in the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
        self.policy_waits = Counter(
            "weir_node_loader_policy_waits",
            "Registrations that waited for their pod's policy, by outcome: arrived, timeout",
            ["outcome"],
            registry=registry,
        )
        self.policy_wait_seconds = Histogram(
            "weir_node_loader_policy_wait_seconds",
            "How long a registration waited for its pod's policy in weir-policy",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.policy_passes = Counter(
            "weir_node_loader_policy_passes",
            "Passes that made ipcache and policy maps agree with KV",
            registry=registry,
        )
        self.policy_flips = Counter(
            "weir_node_loader_policy_flips",
            "Endpoint policies rewritten through a slot flip",
            registry=registry,
        )
        self.policy_entries_skipped = Counter(
            "weir_node_loader_policy_entries_skipped",
            "Policy entries that could not be realized (logged)",
            registry=registry,
        )
        self.ipcache_writes = Counter(
            "weir_node_loader_ipcache_writes",
            "ipcache map operations (writes and deletes, both tables)",
            registry=registry,
        )
        self.ipcache_prefixes = Gauge(
            "weir_node_loader_ipcache_prefixes",
            "Prefixes in this node's ipcache",
            registry=registry,
        )
        self.flows_published = Counter(
            "weir_flows_published",
            "Flows published on weir.flows.<node>, by verdict",
            ["verdict"],
            registry=registry,
        )
        self.flow_events_dropped = Counter(
            "weir_flow_events_dropped",
            "Verdict events read but not published, by reason: backlog (queue full), "
            "undecodable, publish (NATS refused)",
            ["reason"],
            registry=registry,
        )
        self.ct_gc_runs = Counter(
            "weir_conntrack_gc_runs", "Conntrack garbage collection passes", registry=registry
        )
        self.ct_gc_deleted = Counter(
            "weir_conntrack_gc_deleted",
            "Conntrack entries removed by the GC, by protocol and state",
            ["protocol", "state"],
            registry=registry,
        )
        self.ct_entries = Gauge(
            "weir_conntrack_entries",
            "Conntrack entries seen by the last GC pass",
            registry=registry,
        )
        self.ct_gc_seconds = Histogram(
            "weir_conntrack_gc_duration_seconds",
            "Duration of a conntrack GC pass",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=registry,
        )
