"""What a pod's identity is made of, and the stable name of a label set."""

from __future__ import annotations

import pytest
from weir.identity import Reserved
from weir.models import IdentityLabels
from weir_identity_allocator.labels import (
    BadPrefix,
    canonical_prefix,
    host_prefix,
    label_hash,
    pod_labels,
    reserved_labels,
)

from tests.unit.identity_allocator.fakes import namespace, pod


def test_a_pods_labels_drop_churny_ones_and_include_its_namespace() -> None:
    labels = pod_labels(
        pod(
            "x",
            "web-7d9f-abc",
            {
                "app": "web",
                "pod-template-hash": "7d9f",
                "controller-revision-hash": "5c",
                "statefulset.kubernetes.io/pod-name": "web-0",
                "apps.kubernetes.io/pod-index": "0",
                "pod-template-generation": "3",
            },
        ),
        namespace("x", team="a"),
    )
    assert labels == IdentityLabels(
        namespace="x",
        pod_labels={"app": "web"},
        namespace_labels={"kubernetes.io/metadata.name": "x", "team": "a"},
    )


def test_pods_of_one_rollout_share_a_label_set_and_other_namespaces_do_not() -> None:
    ns = namespace("x")
    a = pod_labels(pod("x", "a", {"app": "web", "pod-template-hash": "1"}), ns)
    b = pod_labels(pod("x", "b", {"app": "web", "pod-template-hash": "2"}), ns)
    assert label_hash(a) == label_hash(b)
    other_ns = pod_labels(pod("y", "a", {"app": "web"}), namespace("y"))
    assert label_hash(other_ns) != label_hash(a)
    relabelled_ns = pod_labels(pod("x", "a", {"app": "web"}), namespace("x", team="b"))
    assert label_hash(relabelled_ns) != label_hash(a)


def test_the_hash_ignores_map_order_and_is_pinned_across_releases() -> None:
    one = IdentityLabels(
        namespace="x",
        pod_labels={"app": "web", "tier": "fe"},
        namespace_labels={"kubernetes.io/metadata.name": "x"},
    )
    two = IdentityLabels(
        namespace="x",
        pod_labels={"tier": "fe", "app": "web"},
        namespace_labels={"kubernetes.io/metadata.name": "x"},
    )
    assert label_hash(one) == label_hash(two)
    # Pinned: a change here renames every labels.<hash> key in every cluster (a schema change).
    assert (
        label_hash(
            IdentityLabels(
                namespace="x",
                pod_labels={"app": "web"},
                namespace_labels={"kubernetes.io/metadata.name": "x"},
            )
        )
        == "8bc0768fa831e534426becee7e86784f458e5eb5217f2217df02599989aae75f"
    )
    assert (
        label_hash(IdentityLabels(cidr="10.0.0.0/8"))
        == "62358d1a333845017eed6a33047d8461c23af0b1d195f49eac2b071ec0133ae6"
    )
    assert len({label_hash(reserved_labels(r)) for r in Reserved}) == len(Reserved)
    assert reserved_labels(Reserved.REMOTE_NODE).reserved == "remote-node"


def test_prefixes_are_canonical() -> None:
    assert canonical_prefix("10.1.2.3/8") == "10.0.0.0/8"
    assert canonical_prefix(" 192.168.0.0/16") == "192.168.0.0/16"
    assert canonical_prefix("fd00::1/64") == "fd00::/64"
    assert canonical_prefix("10.0.0.5") == "10.0.0.5/32"
    assert host_prefix("10.244.1.5") == "10.244.1.5/32"
    assert host_prefix("FD00::5") == "fd00::5/128"
    for bad in ("10.0.0.0/33", "banana", "", "10.0.0/8x"):
        with pytest.raises(BadPrefix):
            canonical_prefix(bad)
    with pytest.raises(BadPrefix):
        host_prefix("10.0.0.0/24")
