"""policy-compiler's settings (layered as every Weir service's: defaults < file < env < flags)."""

from __future__ import annotations

from dataclasses import dataclass

from weir.config import ServiceConfig, setting


@dataclass(frozen=True, kw_only=True)
class CompilerConfig(ServiceConfig):
    kubeconfig: str = setting(
        "",
        "kubeconfig for posting Events; empty: in-cluster config in a pod, else $KUBECONFIG or "
        "~/.kube/config",
    )
    ipblock_matches_pods: bool = setting(
        True,
        "true: ipBlock also matches pod addresses, as upstream Kubernetes; false: Cilium's "
        "behaviour, ipBlock only for addresses outside the cluster",
    )
    allow_host_ingress: bool = setting(
        True,
        "allow ingress from the node itself to isolated pods (kubelet probes), as Cilium's "
        "allow-localhost; false: a policy must allow the node explicitly",
    )
    events: bool = setting(
        True, "report NetworkPolicies that cannot be fully enforced as Kubernetes Events"
    )
    max_in_flight_writes: int = setting(1024, "weir-policy writes sent but not yet acknowledged")
    max_batch: int = setting(
        2000, "input changes applied before the dirty endpoints are recompiled and written"
    )
