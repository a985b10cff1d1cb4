"""Reading a NetworkPolicy: policyTypes, peers, ports, and failing closed on what cannot be used."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

import pytest
from weir.labels import LabelSelector, Operator, Requirement
from weir.models import (
    IPBlock,
    Meta,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    Protocol,
)
from weir_policy_compiler.cookies import Direction
from weir_policy_compiler.plan import plan_policy
from weir_policy_compiler.ports import PortSpec
from weir_policy_compiler.selectors import BlockSelector, PeerSelector

from tests.unit.policy_compiler.harness import make_policy


def policy(**spec: Any) -> NetworkPolicy:
    return make_policy({"metadata": {"name": "p", "namespace": "x"}, "spec": spec})


def raw_policy(
    types: tuple[PolicyType, ...],
    ingress: tuple[PolicyRule, ...] = (),
    egress: tuple[PolicyRule, ...] = (),
) -> NetworkPolicy:
    """A model built directly (normalization would default policyTypes already)."""
    return NetworkPolicy(
        meta=Meta(name="p", namespace="x", uid="u", resource_version="1"),
        generation=1,
        pod_selector=LabelSelector(),
        policy_types=types,
        ingress=ingress,
        egress=egress,
    )


@pytest.mark.parametrize(
    ("types", "egress", "isolates"),
    [
        ((), (), {Direction.INGRESS}),  # absent: Ingress always
        ((), (PolicyRule(),), {Direction.INGRESS, Direction.EGRESS}),  # + Egress with rules
        ((PolicyType.EGRESS,), (), {Direction.EGRESS}),
        ((PolicyType.INGRESS, PolicyType.EGRESS), (), {Direction.INGRESS, Direction.EGRESS}),
    ],
)
def test_policy_types_and_their_defaulting(
    types: tuple[PolicyType, ...], egress: tuple[PolicyRule, ...], isolates: set[Direction]
) -> None:
    plan = plan_policy(raw_policy(types, egress=egress))
    assert {d for d in Direction if plan.rules(d) is not None} == isolates


def test_rules_of_a_type_the_policy_does_not_have_are_ignored() -> None:
    plan = plan_policy(policy(podSelector={}, policyTypes=["Ingress"], egress=[{}]))
    assert plan.egress is None


def test_empty_lists_mean_everything_and_an_absent_rule_list_means_nothing() -> None:
    allow_all = plan_policy(policy(podSelector={}, policyTypes=["Ingress"], ingress=[{}]))
    assert allow_all.ingress is not None
    (rule,) = allow_all.ingress
    assert rule.any_peer and rule.any_port
    deny_all = plan_policy(policy(podSelector={}, policyTypes=["Ingress"], ingress=[]))
    assert deny_all.ingress == ()


def test_peers_become_selector_keys() -> None:
    plan = plan_policy(
        policy(
            podSelector={},
            policyTypes=["Ingress"],
            ingress=[
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"pod": "b"}}},
                        {"namespaceSelector": {"matchLabels": {"ns": "y"}}},
                        {
                            "podSelector": {"matchLabels": {"pod": "b"}},
                            "namespaceSelector": {"matchLabels": {"ns": "y"}},
                        },
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    ]
                }
            ],
        )
    )
    assert plan.ingress is not None
    (rule,) = plan.ingress
    own_ns, any_ns, both = rule.selectors
    assert own_ns.namespace == "x" and own_ns.namespaces is None  # podSelector: own namespace
    assert any_ns.namespace is None and any_ns.pods is None  # namespaceSelector: every pod
    assert both.namespace is None and both.pods is not None and both.namespaces is not None
    assert rule.blocks == (BlockSelector(IPv4Network("10.0.0.0/8"), (IPv4Network("10.1.0.0/16"),)),)
    assert not rule.any_peer and plan.problems == ()


def test_equal_selectors_are_one_key_whatever_their_order() -> None:
    def peer(values: list[str]) -> PeerSelector:
        plan = plan_policy(
            policy(
                podSelector={},
                ingress=[
                    {
                        "from": [
                            {
                                "podSelector": {
                                    "matchLabels": {"a": "1", "b": "2"},
                                    "matchExpressions": [
                                        {"key": "k", "operator": "In", "values": values}
                                    ],
                                }
                            }
                        ]
                    }
                ],
            )
        )
        assert plan.ingress is not None
        return plan.ingress[0].selectors[0]

    assert peer(["p", "q"]) == peer(["q", "p"])
    assert hash(peer(["p", "q"])) == hash(peer(["q", "p"]))
    assert peer(["p"]) != peer(["q"])


@pytest.mark.parametrize(
    ("port", "want"),
    [
        ({}, PortSpec(protocol=6, protocol_name=Protocol.TCP)),  # protocol only: every port
        ({"port": 80}, PortSpec(protocol=6, port=80, end_port=80)),
        ({"port": 80, "protocol": "UDP"}, PortSpec(17, 80, 80, protocol_name=Protocol.UDP)),
        ({"port": 80, "protocol": "SCTP"}, PortSpec(132, 80, 80, protocol_name=Protocol.SCTP)),
        ({"port": 8000, "endPort": 8080}, PortSpec(protocol=6, port=8000, end_port=8080)),
        ({"port": "http"}, PortSpec(protocol=6, name="http")),
        ({"port": "dns", "protocol": "UDP"}, PortSpec(17, name="dns", protocol_name=Protocol.UDP)),
    ],
)
def test_ports(port: dict[str, Any], want: PortSpec) -> None:
    plan = plan_policy(policy(podSelector={}, ingress=[{"ports": [port]}]))
    assert plan.ingress is not None
    assert plan.ingress[0].ports == (want,) and plan.problems == ()


# --- what cannot be used ----------------------------------------------------------------------

BAD_PEERS = [
    ({"ipBlock": {"cidr": "2001:db8::/32"}}, "IPv6"),
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}, "not inside"),
    (
        {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
        "cannot be combined",
    ),
    ({}, "needs podSelector"),
    (
        {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}},
        "needs values",
    ),
]


@pytest.mark.parametrize(("peer", "why"), BAD_PEERS, ids=[w for _, w in BAD_PEERS])
def test_an_unusable_peer_is_reported_and_allows_nothing(peer: dict[str, Any], why: str) -> None:
    plan = plan_policy(policy(podSelector={}, ingress=[{"from": [peer]}]))
    assert len(plan.problems) == 1 and why in plan.problems[0]
    assert "spec.ingress[0].from[0]" in plan.problems[0]
    assert plan.ingress is not None
    (rule,) = plan.ingress
    # Fail closed: no usable peer left is NOT "every peer".
    assert not rule.any_peer and rule.selectors == () and rule.blocks == ()


def test_the_usable_peers_of_a_rule_stay() -> None:
    plan = plan_policy(
        policy(
            podSelector={},
            ingress=[
                {
                    "from": [
                        {"ipBlock": {"cidr": "2001:db8::/32"}},
                        {"podSelector": {"matchLabels": {"pod": "b"}}},
                    ]
                }
            ],
        )
    )
    assert plan.ingress is not None
    assert len(plan.ingress[0].selectors) == 1 and len(plan.problems) == 1


def test_a_selector_operator_a_policy_cannot_have_is_reported() -> None:
    # Gt exists only in the string form of a selector; normalization cannot produce it, a
    # model built by hand can.
    peer = PolicyPeer(
        pod_selector=LabelSelector(
            match_expressions=(Requirement(key="n", operator=Operator.GT, values=("1",)),)
        )
    )
    plan = plan_policy(raw_policy((PolicyType.INGRESS,), ingress=(PolicyRule(peers=(peer,)),)))
    assert "operator Gt" in plan.problems[0]


BAD_PORTS = [
    (PolicyPort(protocol=Protocol.TCP, port=None, end_port=90), "needs a port"),
    (PolicyPort(protocol=Protocol.TCP, port="http", end_port=90), "numeric port"),
    (PolicyPort(protocol=Protocol.TCP, port=90, end_port=80), "must lie in"),
    (PolicyPort(protocol=Protocol.TCP, port=70000), "outside"),
    (PolicyPort(protocol=Protocol.TCP, port="Not_A_Name"), "not a valid port name"),
    (PolicyPort(protocol=Protocol.TCP, port="8080"), "not a valid port name"),
]


@pytest.mark.parametrize(("port", "why"), BAD_PORTS, ids=[w for _, w in BAD_PORTS])
def test_an_unusable_port_is_reported_and_a_rule_without_ports_left_allows_nothing(
    port: PolicyPort, why: str
) -> None:
    rule = PolicyRule(ports=(port,))
    plan = plan_policy(raw_policy((PolicyType.EGRESS,), egress=(rule,)))
    assert len(plan.problems) == 1 and why in plan.problems[0], plan.problems
    assert plan.egress is not None
    (compiled,) = plan.egress
    assert not compiled.any_port and compiled.ports == ()  # not "every port"


def test_the_problems_name_every_part() -> None:
    plan = plan_policy(
        raw_policy(
            (PolicyType.INGRESS,),
            ingress=(
                PolicyRule(
                    peers=(PolicyPeer(ip_block=IPBlock(cidr="fd00::/8")),),
                    ports=(PolicyPort(protocol=Protocol.UDP, port=0),),
                ),
            ),
        )
    )
    assert [p.split(":")[0] for p in plan.problems] == [
        "spec.ingress[0].from[0]",
        "spec.ingress[0].ports[0]",
    ]
