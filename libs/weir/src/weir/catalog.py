"""Every KV bucket and subject Weir uses, with its message schema: the one place that names them.

Desired state lives in JetStream KV buckets, one key per object; a writer always puts the full
value (never a delta), so a reader that starts late converges from a replay alone. Events that
are not state go on plain subjects. Key layouts are defined here too, so no other module spells
a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from weir.codec import Schema
from weir.models import (
    BarrierReply,
    BarrierRequest,
    EndpointPolicy,
    EndpointRecord,
    EndpointSlice,
    Flow,
    Identity,
    IPCacheEntry,
    K8sObject,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    Service,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Bucket(Generic[T]):
    """A JetStream KV bucket. `history` is how many revisions per key the server keeps."""

    name: str
    schema: Schema[T]
    description: str
    history: int = 1


@dataclass(frozen=True)
class Subject(Generic[T]):
    """A plain subject (or subject family: `pattern` may hold `{node}`-style placeholders)."""

    pattern: str
    schema: Schema[T]
    description: str


# --- weir-k8s: the Kubernetes API's objects, normalized (written only by k8s-watcher) -------------

K8S_SCHEMA: Schema[K8sObject] = Schema(
    name="k8s-object",
    version=1,
    types=(Namespace, Pod, Service, Node, EndpointSlice, NetworkPolicy),
)

K8S = Bucket[K8sObject](
    name="weir-k8s",
    schema=K8S_SCHEMA,
    description=(
        "Desired state from the Kubernetes API, one key per object: "
        "<kind>.<namespace>.<name> for namespaced kinds, <kind>.<name> for cluster-scoped ones"
    ),
)

# Key prefix per kind; also the order in which a fresh consumer should apply them
# (namespaces and nodes before what lives in them).
K8S_KIND_PREFIX: dict[type[K8sObject], str] = {
    Namespace: "namespace",
    Node: "node",
    Pod: "pod",
    Service: "service",
    EndpointSlice: "endpointslice",
    NetworkPolicy: "networkpolicy",
}
_CLUSTER_SCOPED = frozenset({"namespace", "node"})


def k8s_key(prefix: str, namespace: str, name: str) -> str:
    """The weir-k8s key of an object. Names are DNS names, so they are valid KV key tokens."""
    if prefix in _CLUSTER_SCOPED:
        return f"{prefix}.{name}"
    return f"{prefix}.{namespace}.{name}"


def k8s_key_of(obj: K8sObject) -> str:
    return k8s_key(K8S_KIND_PREFIX[type(obj)], obj.meta.namespace, obj.meta.name)


# --- weir-endpoints: pod endpoints realized on each node (written only by node-loader) -----------

ENDPOINTS_SCHEMA: Schema[EndpointRecord] = Schema(
    name="endpoint", version=1, types=(EndpointRecord,)
)

ENDPOINTS = Bucket[EndpointRecord](
    name="weir-endpoints",
    schema=ENDPOINTS_SCHEMA,
    description="Pod endpoints realized by node-loader: <node>.<container id>",
)


def endpoint_key(node: str, container_id: str) -> str:
    """Node names are DNS names and container ids are hex/uuid strings: valid key tokens."""
    return f"{node}.{container_id}"


# --- weir-identities, weir-ipcache: security identities (written only by identity-allocator) ------

IDENTITIES_SCHEMA: Schema[Identity] = Schema(name="identity", version=1, types=(Identity,))
IDENTITIES = Bucket[Identity](
    name="weir-identities",
    schema=IDENTITIES_SCHEMA,
    description=(
        "Numeric identities: id.<n> reserves n for a label set, labels.<hash> maps a label set "
        "to its number; both created by compare-and-set"
    ),
)


def identity_id_key(identity: int) -> str:
    return f"id.{identity}"


def identity_labels_key(label_hash: str) -> str:
    return f"labels.{label_hash}"


IPCACHE_SCHEMA: Schema[IPCacheEntry] = Schema(name="ipcache", version=1, types=(IPCacheEntry,))
IPCACHE = Bucket[IPCacheEntry](
    name="weir-ipcache",
    schema=IPCACHE_SCHEMA,
    description="IP prefixes to identities (longest prefix wins): key <address>/<length>",
)


def ipcache_key(prefix: str) -> str:
    """`10.244.1.5/32`: dots and slashes are valid KV key characters."""
    return prefix


# --- weir-policy: compiled per-endpoint policy (written only by policy-compiler) ------------------

POLICY_SCHEMA: Schema[EndpointPolicy] = Schema(
    name="endpoint-policy", version=1, types=(EndpointPolicy,)
)
POLICY = Bucket[EndpointPolicy](
    name="weir-policy",
    schema=POLICY_SCHEMA,
    description="Compiled policy per endpoint: key <node>.<pod namespace>.<pod name>",
)


def policy_key(node: str, namespace: str, pod: str) -> str:
    return f"{node}.{namespace}.{pod}"


BUCKETS: tuple[Bucket[Any], ...] = (K8S, ENDPOINTS, IDENTITIES, IPCACHE, POLICY)

# --- weir.flows.<node>: policy verdicts seen by the datapath (published by node-loader) -----------

FLOWS_SCHEMA: Schema[Flow] = Schema(name="flow", version=1, types=(Flow,))
FLOWS = Subject[Flow](
    pattern="weir.flows.{node}",
    schema=FLOWS_SCHEMA,
    description="Policy verdicts (allowed new flows, denied packets), named, rate-limited",
)


def flows_subject(node: str) -> str:
    return f"weir.flows.{node}"


# --- weir.barrier.*: "have you applied everything pending?" (request/reply) ----------------------

BARRIER_SCHEMA: Schema[BarrierRequest | BarrierReply] = Schema(
    name="barrier", version=1, types=(BarrierRequest, BarrierReply)
)
BARRIER = Subject[BarrierRequest | BarrierReply](
    pattern="weir.barrier.{service}",
    schema=BARRIER_SCHEMA,
    description=(
        "Convergence barrier: a service replies once it has applied every change that was "
        "pending when the request arrived; per-node services listen on "
        "weir.barrier.<service>.<node>"
    ),
)
# The order in which changes flow, so a barrier passed in this order covers the whole pipeline.
PIPELINE = (
    "k8s-watcher",
    "identity-allocator",
    "policy-compiler",
    "lb-programmer",
    "bandwidth-manager",
)
NODE_PIPELINE = ("node-loader",)


def barrier_subject(service: str, node: str = "") -> str:
    return f"weir.barrier.{service}" + (f".{node}" if node else "")


SUBJECTS: tuple[Subject[Any], ...] = (BARRIER, FLOWS)


def bucket_named(name: str) -> Bucket[Any] | None:
    return next((b for b in BUCKETS if b.name == name), None)
