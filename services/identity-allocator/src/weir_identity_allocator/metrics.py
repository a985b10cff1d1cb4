"""identity-allocator's Prometheus metrics, registered in the service's own registry.

(Values in the buckets that cannot be decoded are counted by the bus, as
weir_bus_decode_errors_total{source=<bucket>}.)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.identities = Gauge(
            "weir_identity_allocator_identities",
            "Identities in weir-identities (id keys), by kind: reserved, pod, cidr",
            ["kind"],
            registry=registry,
        )
        self.allocations = Counter(
            "weir_identity_allocator_allocations",
            "Label sets given a number, by kind (pod, cidr) and how: created, adopted, revived",
            ["kind", "how"],
            registry=registry,
        )
        self.allocation_failures = Counter(
            "weir_identity_allocator_allocation_failures",
            "Allocations that failed (KV unreachable, too many lost races); retried",
            registry=registry,
        )
        self.cas_conflicts = Counter(
            "weir_identity_allocator_cas_conflicts",
            "Compare-and-set writes that lost, by key (id, labels) and operation",
            ["key", "op"],
            registry=registry,
        )
        self.gc_releases = Counter(
            "weir_identity_allocator_gc_releases",
            "Garbage-collection attempts on unused identities, by outcome "
            "(released, gone, in_use, changed, error)",
            ["outcome"],
            registry=registry,
        )
        self.ipcache_entries = Gauge(
            "weir_identity_allocator_ipcache_entries",
            "Entries in weir-ipcache, by kind (pod, node, cidr, world)",
            ["kind"],
            registry=registry,
        )
        self.ipcache_write_failures = Counter(
            "weir_identity_allocator_ipcache_write_failures",
            "ipcache writes that failed or were not acknowledged (retried)",
            registry=registry,
        )
        self.rejected = Counter(
            "weir_identity_allocator_rejected_inputs",
            "Objects (or parts) skipped as unusable, by reason: bad-ip, bad-cidr, "
            "address-conflict, wrong-kind; counted once each time one appears",
            ["reason"],
            registry=registry,
        )
        self.waiting_pods = Gauge(
            "weir_identity_allocator_pods_waiting",
            "Pods without an identity because their namespace is not in weir-k8s yet",
            registry=registry,
        )
        self.pass_seconds = Histogram(
            "weir_identity_allocator_pass_seconds",
            "Duration of one reconcile pass (allocations and ipcache writes included)",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
