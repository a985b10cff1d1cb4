"""Route planning toward other nodes' pods."""

from __future__ import annotations

from weir.models import Meta, Node
from weir_node_loader.routes import RoutePlan, desired_routes, plan_routes, pod_cidr


def node(name: str, ip: str | None, cidr: str | None) -> Node:
    return Node(
        meta=Meta(name=name, uid=name, resource_version="1"),
        internal_ips=(ip,) if ip else (),
        external_ips=(),
        pod_cidrs=(cidr,) if cidr else (),
        taints=(),
        ready=True,
        unschedulable=False,
    )


def test_every_other_node_with_ip_and_podcidr_gets_a_route() -> None:
    nodes = [
        node("n1", "172.18.0.2", "10.244.1.0/24"),
        node("n2", "172.18.0.3", "10.244.2.0/24"),
        node("n3", "172.18.0.4", None),  # no podCIDR yet
        node("n4", None, "10.244.4.0/24"),  # no InternalIP yet
    ]
    assert desired_routes(nodes, "n1") == {"10.244.2.0/24": "172.18.0.3"}


def test_ipv4_is_picked_from_dual_stack_lists() -> None:
    n = node("n2", None, None)
    n = Node(
        meta=n.meta,
        internal_ips=("fd00::3", "172.18.0.3"),
        external_ips=(),
        pod_cidrs=("fd00:10:244:2::/64", "10.244.2.0/24"),
        taints=(),
        ready=True,
        unschedulable=False,
    )
    assert desired_routes([n], "n1") == {"10.244.2.0/24": "172.18.0.3"}
    assert pod_cidr(n) == "10.244.2.0/24"


def test_a_podcidr_overlapping_our_own_is_never_routed_away() -> None:
    nodes = [node("n1", "172.18.0.2", "10.244.0.0/16"), node("n2", "172.18.0.3", "10.244.2.0/24")]
    assert desired_routes(nodes, "n1") == {}


def test_a_podcidr_claimed_twice_goes_to_the_first_node_by_name() -> None:
    nodes = [node("n3", "172.18.0.4", "10.244.2.0/24"), node("n2", "172.18.0.3", "10.244.2.0/24")]
    assert desired_routes(nodes, "n1") == {"10.244.2.0/24": "172.18.0.3"}


def test_the_plan_adds_replaces_and_deletes_only_what_differs() -> None:
    desired = {"10.244.2.0/24": "172.18.0.3", "10.244.3.0/24": "172.18.0.9"}
    actual = {"10.244.3.0/24": "172.18.0.4", "10.244.5.0/24": "172.18.0.6"}
    assert plan_routes(desired, actual) == RoutePlan(
        add={"10.244.2.0/24": "172.18.0.3"},
        replace={"10.244.3.0/24": "172.18.0.9"},
        delete=("10.244.5.0/24",),
    )
    assert plan_routes(desired, desired).empty
