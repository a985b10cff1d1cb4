"""policy-compiler's Prometheus metrics, in the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .core import Cause, Compiler


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.endpoints = Gauge(
            "weir_policy_compiler_endpoints",
            "Endpoints with a compiled policy in weir-policy",
            registry=registry,
        )
        self.entries = Gauge(
            "weir_policy_compiler_entries",
            "Policy entries over every compiled endpoint (both directions)",
            registry=registry,
        )
        self.recomputations = Counter(
            "weir_policy_compiler_recomputations",
            "Endpoint policies recompiled, by the kind of change that made them stale",
            ["cause"],
            registry=registry,
        )
        self.unusable = Gauge(
            "weir_policy_compiler_unusable_policies",
            "NetworkPolicies with parts that cannot be compiled (they still isolate)",
            registry=registry,
        )
        self.reports = Counter(
            "weir_policy_compiler_unusable_reports",
            "Times a NetworkPolicy was reported as not fully enforceable",
            registry=registry,
        )
        self.events = Counter(
            "weir_policy_compiler_events",
            "Kubernetes Events posted about unusable policies, by result",
            ["result"],
            registry=registry,
        )
        self.writes = Counter(
            "weir_policy_compiler_writes",
            "weir-policy writes, by operation",
            ["op"],
            registry=registry,
        )
        self.write_failures = Counter(
            "weir_policy_compiler_write_failures",
            "weir-policy writes that failed (the endpoint is written again)",
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "weir_policy_compiler_flush_seconds",
            "Time to recompile the dirty endpoints of one batch of changes",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self._counted: dict[Cause, int] = {}

    def observe(self, compiler: Compiler) -> None:
        """Copy the core's figures (it counts; the shell exports)."""
        self.endpoints.set(compiler.endpoints)
        self.entries.set(compiler.entries)
        self.unusable.set(compiler.unusable_policies)
        for cause, n in compiler.recomputations.items():
            delta = n - self._counted.get(cause, 0)
            if delta:
                self.recomputations.labels(str(cause)).inc(delta)
                self._counted[cause] = n
