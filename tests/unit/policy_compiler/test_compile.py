"""The compiled tables entry by entry: isolation, peers, ports, named ports, host, cookies."""

from __future__ import annotations

from typing import Any

import pytest
from weir.identity import Reserved
from weir.models import ContainerPort, DirectionPolicy, Identity, IdentityLabels, Protocol
from weir_policy_compiler.compile import Settings
from weir_policy_compiler.cookies import cookie_of

from tests.unit.policy_compiler.harness import Cluster, make_pod

HOST = int(Reserved.HOST)


def cluster(settings: Settings | None = None) -> Cluster:
    c = Cluster(settings=settings or Settings())
    c.namespace("x")
    c.namespace("y")
    c.pod(make_pod("x", "a", ip="10.244.1.1"))
    c.pod(make_pod("x", "b", ip="10.244.1.2"))
    c.pod(make_pod("y", "a", ip="10.244.2.1", node="node-2"))
    return c


def policy(name: str = "p", namespace: str = "x", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def entries(d: DirectionPolicy) -> set[tuple[int, int, int, int]]:
    """Entries without the host allow and cookies."""
    return {(e.identity, e.protocol, e.port, e.end_port) for e in d.entries if e.identity != HOST}


def test_every_bound_pod_has_an_endpoint_even_with_no_policy() -> None:
    c = cluster()
    c.sync()
    assert sorted(c.bucket) == ["node-1.x.a", "node-1.x.b", "node-2.y.a"]
    ep = c.endpoint("x/a")
    assert ep.identity == c.identity("x/a") and ep.pod_uid == "uid-x-a" and ep.node == "node-1"
    assert not ep.ingress.enforced and not ep.egress.enforced
    assert ep.ingress.entries == () and ep.cookies == {}


def test_unbound_and_host_network_pods_have_no_endpoint() -> None:
    c = cluster()
    c.pod(make_pod("x", "pending", ip="", node=""))
    c.pod(make_pod("x", "host", ip="172.18.0.2", host_network=True))
    c.sync()
    assert "node-1.x.host" not in c.bucket and not any("pending" in k for k in c.bucket)
    c.pod(make_pod("x", "pending", ip="10.244.1.9", node="node-1"))  # scheduled
    c.sync()
    assert "node-1.x.pending" in c.bucket


def test_no_endpoint_until_the_pod_identity_is_known() -> None:
    c = cluster()
    c.allocate = False
    c.sync()
    assert c.bucket == {}
    c.allocate = True
    c.sync()
    assert len(c.bucket) == 3


def test_isolation_is_per_direction() -> None:
    c = cluster()
    c.apply_policy(policy(podSelector={}, policyTypes=["Egress"], egress=[]))
    c.sync()
    ep = c.endpoint("x/a")
    assert ep.egress.enforced and ep.egress.entries == ()
    assert not ep.ingress.enforced
    assert not c.endpoint("y/a").egress.enforced  # another namespace


def test_policies_select_by_pod_labels_in_their_own_namespace() -> None:
    c = cluster()
    c.apply_policy(policy(podSelector={"matchLabels": {"pod": "a"}}, ingress=[]))
    c.sync()
    assert c.endpoint("x/a").ingress.enforced
    assert not c.endpoint("x/b").ingress.enforced
    assert not c.endpoint("y/a").ingress.enforced  # pod=a, but not in x


def test_empty_rule_allows_any_identity_any_protocol_any_port() -> None:
    c = cluster()
    c.apply_policy(policy(podSelector={}, ingress=[{}]))
    c.sync()
    assert entries(c.endpoint("x/a").ingress) == {(0, 0, 0, 0)}


def test_peers_resolve_to_pod_identities() -> None:
    c = cluster()
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            ingress=[
                {"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]},  # x/b
                {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]},  # y/*
            ],
        )
    )
    c.sync()
    ep = c.endpoint("x/a")
    assert entries(ep.ingress) == {
        (c.identity("x/b"), 0, 0, 0),
        (c.identity("y/a"), 0, 0, 0),
    }


def test_pod_and_namespace_selector_in_one_peer_is_an_and() -> None:
    c = cluster()
    c.pod(make_pod("y", "b", ip="10.244.2.2", node="node-2"))
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            ingress=[
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"ns": "y"}},
                            "podSelector": {"matchLabels": {"pod": "b"}},
                        }
                    ]
                }
            ],
        )
    )
    c.sync()
    assert entries(c.endpoint("x/a").ingress) == {(c.identity("y/b"), 0, 0, 0)}


def test_ports_protocols_and_ranges() -> None:
    c = cluster()
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            ingress=[
                {
                    "ports": [
                        {"port": 80},
                        {"port": 53, "protocol": "UDP"},
                        {"port": 9000, "endPort": 9100, "protocol": "TCP"},
                        {"port": 80, "protocol": "SCTP"},
                        {"protocol": "UDP"},
                    ]
                }
            ],
        )
    )
    c.sync()
    assert entries(c.endpoint("x/a").ingress) == {
        (0, 6, 80, 80),
        (0, 17, 53, 53),
        (0, 6, 9000, 9100),
        (0, 132, 80, 80),  # SCTP stays SCTP: never a TCP entry
        (0, 17, 0, 0),
    }


def test_ingress_named_ports_resolve_against_the_local_pod() -> None:
    c = cluster()
    http = ContainerPort(name="http", port=8080, protocol=Protocol.TCP)
    c.pod(make_pod("x", "a", ip="10.244.1.1", ports=(http,)))
    c.pod(
        make_pod(
            "x",
            "b",
            ip="10.244.1.2",
            ports=(ContainerPort(name="http", port=9090, protocol=Protocol.TCP),),
        )
    )
    c.pod(make_pod("x", "c", ip="10.244.1.3", ports=()))
    c.apply_policy(policy(podSelector={}, ingress=[{"ports": [{"port": "http"}]}]))
    c.sync()
    assert entries(c.endpoint("x/a").ingress) == {(0, 6, 8080, 8080)}
    assert entries(c.endpoint("x/b").ingress) == {(0, 6, 9090, 9090)}
    assert c.endpoint("x/c").ingress.enforced and entries(c.endpoint("x/c").ingress) == set()


def test_named_ports_match_the_rule_protocol() -> None:
    c = cluster()
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            ingress=[
                {
                    "ports": [
                        {"port": "serve-80-tcp", "protocol": "UDP"},
                        {"port": "serve-81-sctp", "protocol": "SCTP"},
                    ]
                }
            ],
        )
    )
    c.sync()
    assert entries(c.endpoint("x/a").ingress) == {(0, 132, 81, 81)}


def web(name: str, ip: str, port: int | None, **labels: str) -> Any:
    ports = (ContainerPort(name="http", port=port, protocol=Protocol.TCP),) if port else ()
    return make_pod("y", name, ip=ip, node="node-2", labels={"app": "web", **labels}, ports=ports)


def test_egress_named_ports_resolve_per_destination_pod() -> None:
    c = cluster()
    c.pod(web("w1", "10.244.2.11", 8080))
    c.pod(web("w2", "10.244.2.12", 7070))  # same labels as w1: same identity
    c.pod(web("w3", "10.244.2.13", 9090, tier="b"))  # its own identity
    c.pod(web("w4", "10.244.2.14", None, tier="c"))  # has no port named http
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            policyTypes=["Egress"],
            egress=[
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"ns": "y"}},
                            "podSelector": {"matchLabels": {"app": "web"}},
                        }
                    ],
                    "ports": [{"port": "http"}],
                }
            ],
        )
    )
    c.sync()
    same = c.identity("y/w1")
    assert same == c.identity("y/w2")
    assert entries(c.endpoint("x/a").egress) == {
        (same, 6, 8080, 8080),  # an entry per distinct number of the identity's pods
        (same, 6, 7070, 7070),
        (c.identity("y/w3"), 6, 9090, 9090),
    }  # w4: a name the pod does not have opens nothing


def test_egress_named_port_to_any_peer_opens_it_only_towards_pods_that_have_it() -> None:
    c = cluster()
    c.pod(web("w1", "10.244.2.11", 8080))
    c.pod(web("w4", "10.244.2.14", None, tier="c"))
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            policyTypes=["Egress"],
            egress=[{"ports": [{"port": "http"}]}],
        )
    )
    c.sync()
    assert entries(c.endpoint("x/a").egress) == {(c.identity("y/w1"), 6, 8080, 8080)}


def test_ipblock_allows_the_cidr_identities_inside_it_but_not_in_excepts() -> None:
    c = cluster()
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            policyTypes=["Egress"],
            egress=[
                {"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}]}
            ],
        )
    )
    # Another policy's prefixes: one inside the block, one inside the except, one outside.
    c.apply_policy(
        policy(
            name="other",
            namespace="y",
            podSelector={},
            policyTypes=["Egress"],
            egress=[
                {
                    "to": [
                        {"ipBlock": {"cidr": "192.168.7.0/24"}},
                        {"ipBlock": {"cidr": "192.168.1.128/25"}},
                        {"ipBlock": {"cidr": "10.0.0.0/8"}},
                    ]
                }
            ],
        )
    )
    c.sync()
    assert entries(c.endpoint("x/a").egress) == {
        (c.cidr_identity("192.168.0.0/16"), 0, 0, 0),
        (c.cidr_identity("192.168.7.0/24"), 0, 0, 0),
    }


def test_an_ipblock_of_everything_also_allows_world() -> None:
    c = cluster()
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            policyTypes=["Egress"],
            egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}],
        )
    )
    c.sync()
    got = entries(c.endpoint("x/a").egress)
    assert (int(Reserved.WORLD), 0, 0, 0) in got
    assert (c.cidr_identity("10.0.0.0/8"), 0, 0, 0) not in got


def test_egress_named_port_to_an_ipblock_resolves_only_for_pods_inside_it() -> None:
    c = cluster()
    c.pod(web("w1", "10.244.2.11", 8080))
    c.pod(web("w3", "10.244.3.13", 9090, tier="b"))  # outside the block
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            policyTypes=["Egress"],
            egress=[{"to": [{"ipBlock": {"cidr": "10.244.2.0/24"}}], "ports": [{"port": "http"}]}],
        )
    )
    c.sync()
    assert entries(c.endpoint("x/a").egress) == {(c.cidr_identity("10.244.2.0/24"), 6, 8080, 8080)}


@pytest.mark.parametrize("matches_pods", [True, False])
def test_ipblock_matches_pods_is_carried_to_the_datapath(matches_pods: bool) -> None:
    c = cluster(Settings(ipblock_matches_pods=matches_pods))
    c.sync()
    assert c.endpoint("x/a").ipblock_matches_pods is matches_pods


def test_cilium_mode_resolves_named_ports_to_ipblocks_for_no_pod() -> None:
    c = cluster(Settings(ipblock_matches_pods=False))
    c.pod(web("w1", "10.244.2.11", 8080))
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            policyTypes=["Egress"],
            egress=[{"to": [{"ipBlock": {"cidr": "10.244.2.0/24"}}], "ports": [{"port": "http"}]}],
        )
    )
    c.sync()
    assert entries(c.endpoint("x/a").egress) == set()


@pytest.mark.parametrize("allow_host", [True, False])
def test_the_node_may_reach_isolated_pods_unless_turned_off(allow_host: bool) -> None:
    c = cluster(Settings(allow_host_ingress=allow_host))
    c.apply_policy(policy(podSelector={}, policyTypes=["Ingress", "Egress"], ingress=[], egress=[]))
    c.sync()
    ep = c.endpoint("x/a")
    host = [e for e in ep.ingress.entries if e.identity == HOST]
    assert bool(host) is allow_host
    if allow_host:
        assert (host[0].protocol, host[0].port) == (0, 0)
        assert ep.cookies[host[0].cookie].startswith("weir: ingress from the node")
    assert not any(e.identity == HOST for e in ep.egress.entries)  # ingress only


def test_host_is_not_added_where_nothing_is_enforced() -> None:
    c = cluster()
    c.sync()
    assert c.endpoint("x/a").ingress.entries == ()


def test_union_of_policies_and_the_first_isolating_policy_names_the_default() -> None:
    c = cluster()
    c.apply_policy(policy("zz-allow-80", podSelector={}, ingress=[{"ports": [{"port": 80}]}]))
    c.apply_policy(policy("aa-allow-81", podSelector={}, ingress=[{"ports": [{"port": 81}]}]))
    c.sync()
    ep = c.endpoint("x/a")
    assert entries(ep.ingress) == {(0, 6, 80, 80), (0, 6, 81, 81)}
    assert ep.cookies[ep.ingress.default_cookie] == "x/aa-allow-81: ingress default deny"
    by_port = {e.port: ep.cookies[e.cookie] for e in ep.ingress.entries if e.identity != HOST}
    assert by_port == {80: "x/zz-allow-80: ingress rule 1", 81: "x/aa-allow-81: ingress rule 1"}


def test_every_cookie_used_is_named_and_stable() -> None:
    c = cluster()
    c.apply_policy(
        policy(
            "web",
            podSelector={},
            policyTypes=["Ingress", "Egress"],
            ingress=[{"ports": [{"port": 80}]}, {"ports": [{"port": 81}]}],
            egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}],
        )
    )
    c.sync()
    ep = c.endpoint("x/a")
    used = {e.cookie for d in (ep.ingress, ep.egress) for e in d.entries}
    used |= {ep.ingress.default_cookie, ep.egress.default_cookie}
    assert set(ep.cookies) == used
    assert ep.cookies[cookie_of("x/web: ingress rule 2")] == "x/web: ingress rule 2"
    assert ep.cookies[ep.egress.default_cookie] == "x/web: egress default deny"
    # The same rule has the same cookie on every endpoint.
    assert c.endpoint("x/b").cookies == ep.cookies


def test_an_entry_allowed_twice_keeps_the_first_rule() -> None:
    c = cluster()
    c.apply_policy(policy("a", podSelector={}, ingress=[{"ports": [{"port": 80}]}]))
    c.apply_policy(policy("b", podSelector={}, ingress=[{"ports": [{"port": 80}]}]))
    c.sync()
    ep = c.endpoint("x/a")
    (entry,) = [e for e in ep.ingress.entries if e.identity != HOST]
    assert ep.cookies[entry.cookie] == "x/a: ingress rule 1"
    assert "x/b: ingress rule 1" not in ep.cookies.values()


def test_selectable_identities_are_only_those_in_use() -> None:
    c = cluster()
    # A number left over for a label set no pod has any more (garbage collection pending).
    stale = Identity(
        id=999,
        labels=IdentityLabels(
            namespace="x",
            pod_labels={"pod": "b"},
            namespace_labels={"ns": "x", "kubernetes.io/metadata.name": "x", "old": "1"},
        ),
    )
    c.compiler.identity_changed("id.999", stale)
    c.apply_policy(
        policy(
            podSelector={"matchLabels": {"pod": "a"}},
            ingress=[{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
        )
    )
    c.sync()
    assert entries(c.endpoint("x/a").ingress) == {(c.identity("x/b"), 0, 0, 0)}


def test_a_pods_identity_falls_back_to_its_address() -> None:
    """Labels changed, the new label set has no number yet: the address's identity stays."""
    c = cluster()
    c.sync()
    before = c.identity("x/b")
    c.allocate = False
    c.label_pod("x/b", {"extra": "1"})
    c.sync()
    assert c.endpoint("x/b").identity == before
