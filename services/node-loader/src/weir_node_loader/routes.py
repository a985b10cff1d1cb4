"""Routes to other nodes' pods (direct node routes), decided with no I/O.

Every other Node with an InternalIP and a podCIDR gets `<podCIDR> via <InternalIP>` in this
node's main table, marked with Weir's route protocol; reconciliation lists only routes with that
mark, so it adds what is missing, replaces what changed and deletes what is stale without ever
touching a route someone else made. IPv4 only, like the rest of the datapath for now.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from weir.models import Node


def _first_ipv4_network(values: Iterable[str]) -> ipaddress.IPv4Network | None:
    for v in values:
        try:
            return ipaddress.IPv4Network(v)
        except ValueError:
            continue
    return None


def _first_ipv4(values: Iterable[str]) -> str | None:
    for v in values:
        try:
            return str(ipaddress.IPv4Address(v))
        except ValueError:
            continue
    return None


def pod_cidr(node: Node) -> str | None:
    """The node's IPv4 podCIDR, if it has one."""
    net = _first_ipv4_network(node.pod_cidrs)
    return str(net) if net else None


def desired_routes(nodes: Iterable[Node], self_name: str) -> dict[str, str]:
    """podCIDR -> InternalIP for every other node that has both. A podCIDR that overlaps this
    node's own is skipped (its pods are local), and when two nodes claim one podCIDR the first
    by name wins, so the answer does not depend on the order the nodes arrive in."""
    nodes = sorted(nodes, key=lambda n: n.meta.name)
    own = next((n for n in nodes if n.meta.name == self_name), None)
    own_net = _first_ipv4_network(own.pod_cidrs) if own else None
    routes: dict[str, str] = {}
    for node in nodes:
        if node.meta.name == self_name:
            continue
        net = _first_ipv4_network(node.pod_cidrs)
        gateway = _first_ipv4(node.internal_ips)
        if net is None or gateway is None or str(net) in routes:
            continue
        if own_net is not None and net.overlaps(own_net):
            continue
        routes[str(net)] = gateway
    return routes


@dataclass(frozen=True)
class RoutePlan:
    add: dict[str, str] = field(default_factory=dict)
    replace: dict[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.replace or self.delete)


def plan_routes(desired: Mapping[str, str], actual: Mapping[str, str]) -> RoutePlan:
    """What turns Weir's `actual` routes (CIDR -> gateway) into `desired`."""
    return RoutePlan(
        add={c: g for c, g in sorted(desired.items()) if c not in actual},
        replace={c: g for c, g in sorted(desired.items()) if c in actual and actual[c] != g},
        delete=tuple(sorted(c for c in actual if c not in desired)),
    )
