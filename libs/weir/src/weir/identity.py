"""Numeric security identities: the reserved ones, the ranges, and what a pod's identity is made of.

An identity names a set of security-relevant labels; policy is written against identities,
never against IPs, so a pod moving or scaling changes ipcache entries, not policy tables.
Reserved ids follow Cilium's numbering so the figures read the same to users of either.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import NewType

IdentityId = NewType("IdentityId", int)

ANY = IdentityId(0)  # in a policy entry: every remote identity


class Reserved(IntEnum):
    HOST = 1
    WORLD = 2
    UNMANAGED = 3
    HEALTH = 4
    INIT = 5
    REMOTE_NODE = 6
    KUBE_APISERVER = 7
    INGRESS = 8


CLUSTER_MIN = 256  # the first id handed to a label set
CLUSTER_MAX = (1 << 24) - 1  # identities at and above 1<<24 are CIDR identities
LOCAL_CIDR_FLAG = 1 << 24  # CIDR-derived identities carry this bit: 1<<24 | n

# Labels that change with every rollout without changing what a pod is for policy: keeping
# them would mint a new identity per ReplicaSet revision (and churn every policy table).
CHURNY_LABELS = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
    }
)


def security_labels(pod_labels: Mapping[str, str]) -> dict[str, str]:
    """A pod's labels as its identity sees them (churny labels removed), sorted."""
    return {k: pod_labels[k] for k in sorted(pod_labels) if k not in CHURNY_LABELS}


def is_cidr_identity(identity: int) -> bool:
    return identity >= LOCAL_CIDR_FLAG


def is_reserved(identity: int) -> bool:
    return 0 < identity < CLUSTER_MIN
