"""Incrementality: each change recompiles the endpoints it can affect, and only those.

A spy on the core's compile function records which endpoints each sync recompiled; the counts
by cause are the service's metric. The cluster is the 9-pod model plus 200 bystander pods in a
fourth namespace, so "recompiled everything" and "recompiled what was affected" differ by two
orders of magnitude.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from weir.models import ContainerPort, Protocol
from weir_policy_compiler import compile as compile_module
from weir_policy_compiler import core
from weir_policy_compiler.core import Cause

from tests.unit.policy_compiler.harness import Cluster, make_pod, model_cluster

BYSTANDERS = 200


class Spy:
    def __init__(self) -> None:
        self.compiled: list[str] = []

    def take(self) -> list[str]:
        out, self.compiled = sorted(self.compiled), []
        return out


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    spy = Spy()
    real = compile_module.compile_endpoint

    def recording(pod: Any, *args: Any, **kwargs: Any) -> Any:
        spy.compiled.append(f"{pod.meta.namespace}/{pod.meta.name}")
        return real(pod, *args, **kwargs)

    monkeypatch.setattr(core, "compile_endpoint", recording)
    yield spy


@pytest.fixture
def c(spy: Spy) -> Cluster:
    cluster = model_cluster()
    cluster.namespace("big")
    for i in range(BYSTANDERS):
        cluster.pod(
            make_pod("big", f"p{i}", ip=f"10.245.{i // 250}.{i % 250 + 1}", labels={"app": "big"})
        )
    cluster.apply_policy(
        {
            "metadata": {"name": "a-from-b", "namespace": "x"},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
            },
        }
    )
    cluster.apply_policy(
        {
            "metadata": {"name": "big-isolated", "namespace": "big"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }
    )
    cluster.sync()
    # The model's start compiled its 9 pods; then each new pod once, and x/a for its policy.
    assert len(spy.take()) == 9 + BYSTANDERS + 1
    cluster.compiler.recomputations.clear()
    return cluster


def test_a_label_change_no_peer_selects_recompiles_only_the_pod(c: Cluster, spy: Spy) -> None:
    c.label_pod("z/c", {"color": "red"})
    c.sync()
    assert spy.take() == ["z/c"]
    assert c.compiler.recomputations == {Cause.POD: 1}


def test_a_label_change_into_a_peer_recompiles_the_pod_and_the_selecting_endpoints(
    c: Cluster, spy: Spy
) -> None:
    c.label_pod("x/c", {"pod": "b", "extra": "1"})  # a new identity x/a-from-b's peer selects
    c.sync()
    assert spy.take() == ["x/a", "x/c"]
    assert c.reaches("x/c", "x/a", 80, "TCP")
    c.label_pod("x/a", {"pod": "b"})  # x/b's identity, in use already: no selection changes
    c.sync()
    assert spy.take() == ["x/a"]


def test_a_label_change_out_of_a_peer_recompiles_the_old_identitys_selectors(
    c: Cluster, spy: Spy
) -> None:
    c.label_pod("x/b", {"pod": "q"})
    c.sync()
    assert spy.take() == ["x/a", "x/b"]
    assert not c.reaches("x/b", "x/a", 80, "TCP")


def test_a_shared_identity_leaving_one_pod_changes_no_selection(c: Cluster, spy: Spy) -> None:
    c.pod(make_pod("x", "b2", ip="10.244.1.99", labels={"pod": "b"}))  # same identity as x/b
    c.sync()
    assert spy.take() == ["x/b2"]  # the identity was in use already: nothing else changes
    c.label_pod("x/b2", {"pod": "other"})
    c.sync()
    assert spy.take() == ["x/b2"]


def test_a_policy_change_recompiles_what_it_selected_and_selects(c: Cluster, spy: Spy) -> None:
    c.apply_policy(
        {
            "metadata": {"name": "a-from-b", "namespace": "x"},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "c"}},  # moves from x/a to x/c
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
            },
        }
    )
    c.sync()
    assert spy.take() == ["x/a", "x/c"]
    assert c.compiler.recomputations == {Cause.POLICY: 2}
    c.delete_policy("x", "a-from-b")
    c.sync()
    assert spy.take() == ["x/c"]


def test_a_policy_update_that_changes_nothing_recompiles_nothing(c: Cluster, spy: Spy) -> None:
    c.apply_policy(
        {
            "metadata": {"name": "a-from-b", "namespace": "x", "resourceVersion": "99"},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
            },
        }
    )
    c.sync()
    assert spy.take() == []


def test_a_new_pod_with_a_new_identity_recompiles_itself_and_its_selectors(
    c: Cluster, spy: Spy
) -> None:
    c.pod(make_pod("x", "b-new", ip="10.244.1.50", labels={"pod": "b", "version": "2"}))
    c.sync()
    # Its identity is new and x/a's peer (pod=b) selects it; the 200 bystanders are untouched.
    assert spy.take() == ["x/a", "x/b-new"]
    assert c.reaches("x/b-new", "x/a", 80, "TCP")


def test_a_deleted_pod_recompiles_the_endpoints_that_selected_its_identity(
    c: Cluster, spy: Spy
) -> None:
    c.delete_pod("x/b")
    c.sync()
    assert spy.take() == ["x/a"]
    assert "node-2.x.b" not in c.bucket and "node-1.x.b" not in c.bucket


def test_a_status_change_recompiles_nothing(c: Cluster, spy: Spy) -> None:
    from dataclasses import replace

    pod = c.pods[("x", "b")]
    c.pod(replace(pod, phase="Running", ready=False))
    c.sync()
    assert spy.take() == []


def test_a_namespace_label_change_recompiles_its_pods_and_their_selectors(
    c: Cluster, spy: Spy
) -> None:
    c.apply_policy(
        {
            "metadata": {"name": "from-team", "namespace": "z"},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "t"}}}]}],
            },
        }
    )
    c.sync()
    assert spy.take() == ["z/a"]
    c.label_namespace("y", {"team": "t"})
    c.sync()
    # y's pods have new identities; z/a selects them now; x/a's peer (pod=b in x) does not.
    assert spy.take() == ["y/a", "y/b", "y/c", "z/a"]
    assert c.reaches("y/c", "z/a", 80, "TCP") and not c.reaches("x/c", "z/a", 80, "TCP")


def test_a_cidr_identity_recompiles_only_policies_with_a_block_covering_it(
    c: Cluster, spy: Spy
) -> None:
    c.apply_policy(
        {
            "metadata": {"name": "to-net", "namespace": "y"},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "192.168.0.0/16"}}]}],
            },
        }
    )
    c.sync()
    assert spy.take() == ["y/a"]
    # A prefix inside that block appears (another policy's), and one far away.
    c.apply_policy(
        {
            "metadata": {"name": "other", "namespace": "z"},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "c"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"ipBlock": {"cidr": "192.168.4.0/24"}}]},
                    {"to": [{"ipBlock": {"cidr": "172.16.0.0/12"}}]},
                ],
            },
        }
    )
    c.sync()
    assert spy.take() == ["y/a", "z/c"]


def test_egress_named_ports_follow_remote_pods_ports(c: Cluster, spy: Spy) -> None:
    c.apply_policy(
        {
            "metadata": {"name": "to-http", "namespace": "x"},
            "spec": {
                "podSelector": {"matchLabels": {"pod": "c"}},
                "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": "http"}]}],
            },
        }
    )
    c.sync()
    assert spy.take() == ["x/c"]
    web = make_pod(
        "y",
        "web",
        ip="10.244.2.77",
        labels={"pod": "web"},
        ports=(ContainerPort(name="http", port=8080, protocol=Protocol.TCP),),
    )
    c.pod(web)
    c.sync()
    assert spy.take() == ["x/c", "y/web"]  # x/c's table now opens 8080 towards y/web
    c.pod(make_pod("y", "plain", ip="10.244.2.78", labels={"pod": "plain"}, ports=()))
    c.sync()
    assert spy.take() == ["y/plain"]  # no port named http: nobody else cares


def test_recomputation_count_stays_flat_as_the_cluster_grows(spy: Spy) -> None:
    counts = []
    for size in (10, 100, 400):
        cluster = Cluster()
        cluster.namespace("n")
        for i in range(size):
            cluster.pod(
                make_pod("n", f"p{i}", ip=f"10.9.{i // 250}.{i % 250 + 1}", labels={"i": str(i)})
            )
        cluster.apply_policy(
            {
                "metadata": {"name": "iso", "namespace": "n"},
                "spec": {
                    "podSelector": {},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"i": "0"}}}]}],
                },
            }
        )
        cluster.sync()
        spy.take()
        cluster.label_pod("n/p5", {"j": "1"})
        cluster.sync()
        counts.append(len(spy.take()))
    assert counts == [1, 1, 1]
