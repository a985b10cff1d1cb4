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
