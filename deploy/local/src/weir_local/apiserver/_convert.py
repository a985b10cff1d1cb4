"""The v1 <-> internal conversions that reconcile paired singular/plural fields.

Kubernetes keeps only the plural field internally and derives the singular one when it writes v1,
so what a client reads back is the result of these rules. Defaulting applies them to objects and
validation reads through them, so both agree even on objects that were never defaulted.
"""

from __future__ import annotations

from typing import Any


def effective_plural(singular: Any, plural: Any, wrap: bool) -> list[Any]:
    """Convert_v1_*: a non-empty singular field wins when it disagrees with plural[0]."""
    items = plural if isinstance(plural, list) else []
    if isinstance(singular, str) and singular:
        first = items[0].get("ip") if wrap and items and isinstance(items[0], dict) else None
        if not wrap and items:
            first = items[0]
        if not items or first != singular:
            return [{"ip": singular} if wrap else singular]
    return list(items)


def pod_ips(status: dict[str, Any]) -> list[Any]:
    return effective_plural(status.get("podIP"), status.get("podIPs"), wrap=True)


def host_ips(status: dict[str, Any]) -> list[Any]:
    return effective_plural(status.get("hostIP"), status.get("hostIPs"), wrap=True)


def pod_cidrs(node_spec: dict[str, Any]) -> list[Any]:
    return effective_plural(node_spec.get("podCIDR"), node_spec.get("podCIDRs"), wrap=False)
