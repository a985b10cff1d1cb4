"""The upstream e2e NetworkPolicy model: namespaces x, y, z; pods a, b, c in each.

Namespaces carry `ns=<name>`; pods carry `pod=<name>` and declare ports 80 and 81 on TCP and
UDP, named `serve-<port>-<protocol>`, exactly as test/e2e/network/netpol does.
"""

from __future__ import annotations

import json
from typing import Any

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP")


def pod_refs() -> list[str]:
    return [f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS]


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"ns": name}},
    }


def pod(ns: str, name: str, *, node: str | None = None, **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "cont",
                "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                "ports": [
                    {
                        "name": f"serve-{port}-{proto.lower()}",
                        "containerPort": port,
                        "protocol": proto,
                    }
                    for port in PORTS
                    for proto in PROTOCOLS
                ],
            }
        ],
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"pod": name, **labels}},
        "spec": spec,
    }


def manifests() -> str:
    """The whole model as a kubectl-appliable multi-document stream."""
    objs = [namespace(ns) for ns in NAMESPACES]
    objs += [pod(ns, p) for ns in NAMESPACES for p in PODS]
    return "\n---\n".join(json.dumps(o) for o in objs)
