"""The kubelet's Prometheus metrics (served on /metrics by weir.health.Health)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pods = Gauge("weir_kubelet_pods", "Pods bound to this node", registry=r)
        self.serving = Gauge(
            "weir_kubelet_sandboxes_serving", "Pod sandboxes whose ports are served", registry=r
        )
        self.network_ready = Gauge(
            "weir_kubelet_network_ready", "1 when the CNI network is configured", registry=r
        )
        self.reconciles = Counter(
            "weir_kubelet_reconciles_total", "Pod reconciles by action", ["action"], registry=r
        )
        self.reconcile_errors = Counter(
            "weir_kubelet_reconcile_errors_total", "Pod reconciles that failed", registry=r
        )
        self.cni_seconds = Histogram(
            "weir_kubelet_cni_seconds",
            "CNI plugin executions by command",
            ["command"],
            buckets=_SECONDS,
            registry=r,
        )
        self.cni_errors = Counter(
            "weir_kubelet_cni_errors_total", "CNI executions that failed", ["command"], registry=r
        )
        self.setup_seconds = Histogram(
            "weir_kubelet_sandbox_setup_seconds",
            "From taking a pod on to serving its ports",
            buckets=_SECONDS,
            registry=r,
        )
        self.status_writes = Counter(
            "weir_kubelet_status_writes_total", "Pod status patches sent", registry=r
        )

    def observe_cni(self, command: str, plugin: str, seconds: float, ok: bool) -> None:
        self.cni_seconds.labels(command).observe(seconds)
        if not ok:
            self.cni_errors.labels(command).inc()
