"""Normalized Kubernetes objects: what Weir's dataplane needs to know, and nothing more.

k8s-watcher turns each API object into one of these and writes it to KV weir-k8s; every other
service reads them from there. They are frozen and carry only fields with a dataplane meaning,
so a change elsewhere in an object (a new annotation from a controller, status noise) does not
churn the bus. Byte order, IP parsing and defaulting are settled here once: ports are ints,
protocols are enums, absent lists are empty tuples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

from weir.labels import LabelSelector

NodeName = NewType("NodeName", str)


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class PolicyType(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


class TrafficPolicy(StrEnum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


class SessionAffinity(StrEnum):
    NONE = "None"
    CLIENT_IP = "ClientIP"


# Annotations with a dataplane meaning; every other annotation is dropped during normalization
# (kubectl's last-applied-configuration alone can be kilobytes per object).
DATAPLANE_ANNOTATIONS: frozenset[str] = frozenset(
    {
        "kubernetes.io/egress-bandwidth",
        "kubernetes.io/ingress-bandwidth",
    }
)
DATAPLANE_ANNOTATION_PREFIX = "weir.io/"


@dataclass(frozen=True, slots=True, kw_only=True)
class Meta:
    """Identity and version of the API object a model came from."""

    name: str
    namespace: str = ""  # "" for cluster-scoped kinds
    uid: str
    resource_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace:
    meta: Meta
    terminating: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerPort:
    name: str  # "" when unnamed
    port: int
    protocol: Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod:
    meta: Meta
    node_name: str  # "" while unscheduled
    host_network: bool
    phase: str
    pod_ips: tuple[str, ...]
    host_ip: str
    ready: bool
    terminating: bool  # deletionTimestamp set: drain, do not send new connections
    ports: tuple[ContainerPort, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    meta: Meta
    internal_ips: tuple[str, ...]
    external_ips: tuple[str, ...]
    pod_cidrs: tuple[str, ...]
    taints: tuple[Taint, ...]
    ready: bool
    unschedulable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePort:
    name: str
    protocol: Protocol
    port: int
    target_port: int | str  # a number, or a container port name resolved per pod
    node_port: int  # 0 when none


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    meta: Meta
    type: ServiceType
    cluster_ips: tuple[str, ...]  # empty when headless or ExternalName
    headless: bool
    external_ips: tuple[str, ...]
    load_balancer_ips: tuple[str, ...]  # from status.loadBalancer.ingress
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str] | None  # None: endpoints are managed by someone else
    session_affinity: SessionAffinity
    affinity_timeout_seconds: int
    external_traffic_policy: TrafficPolicy
    internal_traffic_policy: TrafficPolicy
    health_check_node_port: int
    publish_not_ready_addresses: bool
    load_balancer_source_ranges: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointPort:
    name: str
    protocol: Protocol
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool
    serving: bool
    terminating: bool
    node_name: str
    zone: str
    pod_namespace: str  # targetRef, when it is a Pod
    pod_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSlice:
    meta: Meta
    service_name: str  # label kubernetes.io/service-name; "" when not a Service's slice
    address_type: str
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class IPBlock:
    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyPeer:
    """One `from`/`to` entry: selectors are ANDed; exactly one of (selectors, ip_block) is used."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyPort:
    protocol: Protocol
    port: int | str | None = None  # None: every port; str: a named container port
    end_port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRule:
    """An ingress or egress rule. Empty `peers` means every peer; empty `ports`, every port."""

    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicy:
    meta: Meta
    generation: int
    pod_selector: LabelSelector
    policy_types: tuple[PolicyType, ...]
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()


K8sObject = Namespace | Pod | Node | Service | EndpointSlice | NetworkPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointRecord:
    """A pod's network endpoint on one node, as node-loader realized it (KV weir-endpoints).

    Written by node-loader once the endpoint's datapath is in place; deleted on CNI DEL.
    """

    node: str
    container_id: str  # the CNI container (sandbox) id; Weir's local runtime uses the pod uid
    pod_namespace: str
    pod_name: str
    ip: str
    mac: str  # the pod's eth0, aa:bb:cc:dd:ee:ff
    host_ifname: str  # the host-side veth in the node's network namespace
    host_ifindex: int
    host_mac: str
    netns: str  # the pod's network namespace path, as CNI_NETNS gave it
    ifname: str  # the interface name inside the pod (CNI_IFNAME)


@dataclass(frozen=True, slots=True, kw_only=True)
class BarrierRequest:
    """Asks a service: have you applied everything that was pending when this arrived?"""

    wait_seconds: float = 10.0  # how long the service may wait before answering "not yet"


@dataclass(frozen=True, slots=True, kw_only=True)
class BarrierReply:
    service: str
    node: str = ""  # for per-node services
    converged: bool
    detail: str


# --- identities, ipcache, policy, flows (identity-allocator -> policy-compiler -> node-loader) ----


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityLabels:
    """What an identity stands for. Exactly one kind is filled:
    a pod's security labels (`namespace`, `pod_labels`, `namespace_labels`), a CIDR (`cidr`),
    or a reserved identity's name (`reserved`)."""

    namespace: str = ""
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    cidr: str = ""
    reserved: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """KV weir-identities: `id.<n>` reserves number n for a label set, `labels.<hash>` maps the
    label set to its number; both are created by compare-and-set, so replicas agree."""

    id: int
    labels: IdentityLabels


class IPCacheKind(StrEnum):
    POD = "pod"
    NODE = "node"
    CIDR = "cidr"
    WORLD = "world"


@dataclass(frozen=True, slots=True, kw_only=True)
class IPCacheEntry:
    """KV weir-ipcache, key = the prefix with its length (`10.244.1.5/32`, `10.0.0.0/8`):
    the identity of every address in it; the longest prefix wins."""

    prefix: str
    identity: int
    kind: IPCacheKind
    pod_namespace: str = ""
    pod_name: str = ""
    node: str = ""  # for POD: the node it runs on; for NODE: the node itself
    # A policy CIDR of exactly this prefix, claimed by a pod or node too (an ipBlock naming a
    # pod's /32): that CIDR's identity, which ipBlock rules still match. 0: none.
    cidr_identity: int = 0


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyEntry:
    """(remote identity | any, protocol | any, port range | any) -> verdict, with the cookie
    naming the policy rule that made the entry."""

    identity: int  # 0: any remote identity
    protocol: int  # IANA number (6 TCP, 17 UDP, 132 SCTP); 0: any protocol
    port: int = 0  # 0: any port
    end_port: int = 0  # inclusive; equal to `port` for a single port; 0 with port 0
    verdict: Verdict = Verdict.ALLOW
    cookie: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectionPolicy:
    """One direction of one endpoint. Not `enforced`: everything is allowed (no policy selects
    the pod for this direction). Enforced: only what `entries` allow; the rest is denied, and
    `default_cookie` names the policy that isolated it."""

    enforced: bool = False
    default_cookie: int = 0
    entries: tuple[PolicyEntry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointPolicy:
    """KV weir-policy, key `<node>.<pod namespace>.<pod name>`: what one pod on one node may
    send and receive, compiled from every NetworkPolicy that selects it."""

    node: str
    pod_namespace: str
    pod_name: str
    pod_uid: str
    identity: int  # the pod's own identity
    ingress: DirectionPolicy
    egress: DirectionPolicy
    # Upstream Kubernetes matches ipBlock against pod IPs too; Cilium only against addresses
    # outside the cluster. True asks the datapath for the upstream behaviour.
    ipblock_matches_pods: bool = True
    cookies: Mapping[int, str] = field(default_factory=dict)  # cookie -> "ns/policy: rule"


class FlowDirection(StrEnum):
    INGRESS = "ingress"  # into the local endpoint
    EGRESS = "egress"  # out of it


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """A policy verdict the datapath reported (subject weir.flows.<node>), named by node-loader."""

    node: str
    time_ns: int  # CLOCK_REALTIME nanoseconds
    direction: FlowDirection
    verdict: Verdict
    reason: str  # e.g. "policy", "policy-denied", "no-policy" (allowed: not isolated)
    protocol: int
    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    local_pod: str  # "namespace/name"
    remote_pod: str  # "namespace/name", or "" when the remote is not a pod
    local_identity: int
    remote_identity: int
    cookie: int
    policy: str  # the policy (and rule) the cookie names; "" when none
