"""A cluster in memory for policy-compiler tests: inputs as the upstream services write them, a
fake identity-allocator, and a reference datapath that judges reachability from the output.

- Namespaces, pods and NetworkPolicies are fed to the core as k8s-watcher writes them to
  weir-k8s (policies go through k8s-watcher's own normalization, so manifests read exactly as
  in the cluster).
- `FakeAllocator` derives weir-identities and weir-ipcache from them the way identity-allocator
  is specified: one identity per pod label set (pod labels minus churny ones, namespace labels)
  from 256, written as `id.<n>` and `labels.<hash>`; one CIDR identity (bit 1<<24) per ipBlock
  cidr and except prefix; ipcache `<ip>/32` -> the pod's identity, `<prefix>` -> the CIDR's;
  identities nobody uses are deleted (garbage collection, without its grace period).
- `reaches()` is the reference datapath: it knows nothing of the compiler but the EndpointPolicy
  values in weir-policy and the ipcache. A connection needs the source's egress table and the
  destination's ingress table to allow (remote identity, protocol, port); a remote address's
  identities are its longest-prefix ipcache identity and — when the endpoint asks for upstream
  ipBlock semantics — also the identity of its longest CIDR prefix.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from weir import catalog
from weir.codec import Codec
from weir.identity import CLUSTER_MIN, LOCAL_CIDR_FLAG, Reserved, security_labels
from weir.models import (
    ContainerPort,
    DirectionPolicy,
    EndpointPolicy,
    Identity,
    IdentityLabels,
    IPCacheEntry,
    IPCacheKind,
    Meta,
    Namespace,
    NetworkPolicy,
    Pod,
    Protocol,
)
from weir_k8s_watcher.normalize import normalize
from weir_policy_compiler.compile import Settings
from weir_policy_compiler.core import Compiler, Write

CODEC = Codec(catalog.POLICY_SCHEMA)  # decoding, as node-loader reads
PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}
NAME_LABEL = "kubernetes.io/metadata.name"


def model_ports(ports: Iterable[int] = (80, 81)) -> tuple[ContainerPort, ...]:
    """The e2e model's container ports: serve-<port>-<protocol> on TCP, UDP and SCTP."""
    return tuple(
        ContainerPort(name=f"serve-{p}-{proto.lower()}", port=p, protocol=Protocol(proto))
        for p in ports
        for proto in ("TCP", "UDP", "SCTP")
    )


def make_pod(
    namespace: str,
    name: str,
    *,
    ip: str,
    node: str = "node-1",
    labels: Mapping[str, str] | None = None,
    ports: tuple[ContainerPort, ...] | None = None,
    host_network: bool = False,
    uid: str = "",
) -> Pod:
    return Pod(
        meta=Meta(
            name=name,
            namespace=namespace,
            uid=uid or f"uid-{namespace}-{name}",
            resource_version="1",
            labels=dict(labels if labels is not None else {"pod": name}),
        ),
        node_name=node,
        host_network=host_network,
        phase="Running",
        pod_ips=(ip,) if ip else (),
        host_ip="172.18.0.2",
        ready=True,
        terminating=False,
        ports=ports if ports is not None else model_ports(),
    )


def make_namespace(name: str, labels: Mapping[str, str] | None = None) -> Namespace:
    full = {"ns": name, **(labels or {}), NAME_LABEL: name}
    return Namespace(meta=Meta(name=name, uid=f"uid-ns-{name}", resource_version="1", labels=full))


def make_policy(manifest: Mapping[str, Any]) -> NetworkPolicy:
    raw = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **manifest}
    raw.setdefault("metadata", {})
    raw["metadata"] = {"uid": "uid-" + raw["metadata"]["name"], **raw["metadata"]}
    policy = normalize("NetworkPolicy", raw)
    assert isinstance(policy, NetworkPolicy)
    return policy


def label_hash(labels: IdentityLabels) -> str:
    text = repr(
        (
            labels.namespace,
            sorted(labels.pod_labels.items()),
            sorted(labels.namespace_labels.items()),
            labels.cidr,
            labels.reserved,
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FakeAllocator:
    """identity-allocator's contract, computed from the whole cluster each time (tests only)."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}  # label hash -> number, stable while in use
        self._next_pod = CLUSTER_MIN
        self._next_cidr = 1

    def desired(
        self,
        namespaces: Mapping[str, Namespace],
        pods: Mapping[tuple[str, str], Pod],
        policies: Iterable[NetworkPolicy],
    ) -> tuple[dict[str, Identity], dict[str, IPCacheEntry]]:
        identities: dict[str, Identity] = {}
        ipcache: dict[str, IPCacheEntry] = {}
        for (ns, name), pod in sorted(pods.items()):
            if pod.host_network or ns not in namespaces:
                continue
            labels = IdentityLabels(
                namespace=ns,
                pod_labels=security_labels(pod.meta.labels),
                namespace_labels=dict(namespaces[ns].meta.labels),
            )
            number = self._number(labels, cidr=False)
            identities[f"id.{number}"] = Identity(id=number, labels=labels)
            identities[f"labels.{label_hash(labels)}"] = Identity(id=number, labels=labels)
            for ip in pod.pod_ips:
                ipcache[f"{ip}/32"] = IPCacheEntry(
                    prefix=f"{ip}/32",
                    identity=number,
                    kind=IPCacheKind.POD,
                    pod_namespace=ns,
                    pod_name=name,
                    node=pod.node_name,
                )
        for prefix in sorted({p for policy in policies for p in _prefixes(policy)}):
            labels = IdentityLabels(cidr=prefix)
            number = self._number(labels, cidr=True)
            identities[f"id.{number}"] = Identity(id=number, labels=labels)
            identities[f"labels.{label_hash(labels)}"] = Identity(id=number, labels=labels)
            # A /32 of a pod address is the pod's own ipcache key: the pod entry keeps it (as
            # Cilium's ipcache prefers a pod's source), the CIDR identity lives in
            # weir-identities only.
            ipcache.setdefault(
                prefix, IPCacheEntry(prefix=prefix, identity=number, kind=IPCacheKind.CIDR)
            )
        used = {label_hash(i.labels) for i in identities.values()}
        self._numbers = {h: n for h, n in self._numbers.items() if h in used}
        return identities, ipcache

    def _number(self, labels: IdentityLabels, *, cidr: bool) -> int:
        h = label_hash(labels)
        if h not in self._numbers:
            if cidr:
                self._numbers[h] = LOCAL_CIDR_FLAG | self._next_cidr
                self._next_cidr += 1
            else:
                self._numbers[h] = self._next_pod
                self._next_pod += 1
        return self._numbers[h]


def _prefixes(policy: NetworkPolicy) -> set[str]:
    out = set()
    for rule in policy.ingress + policy.egress:
        for peer in rule.peers:
            if peer.ip_block is not None:
                for text in (peer.ip_block.cidr, *peer.ip_block.except_):
                    net = ipaddress.ip_network(text, strict=False)
                    if net.version == 4:
                        out.add(str(net))
    return out


@dataclass
class Cluster:
    """Inputs, the compiler under test, and weir-policy as a dict."""

    settings: Settings = field(default_factory=Settings)
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)
    policies: dict[tuple[str, str], NetworkPolicy] = field(default_factory=dict)
    identities: dict[str, Identity] = field(default_factory=dict)
    ipcache: dict[str, IPCacheEntry] = field(default_factory=dict)
    bucket: dict[str, bytes] = field(default_factory=dict)
    allocate: bool = True  # False: the test feeds identities and ipcache itself

    def __post_init__(self) -> None:
        self.allocator = FakeAllocator()
        self.compiler = Compiler(self.settings, CODEC.encode)
        self.writes: list[Write] = []

    # --- inputs (as k8s-watcher writes them) --------------------------------------------------

    def namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self.namespaces[name] = make_namespace(name, labels)
        self.compiler.namespace_changed(name, self.namespaces[name])

    def delete_namespace(self, name: str) -> None:
        del self.namespaces[name]
        self.compiler.namespace_changed(name, None)

    def pod(self, pod: Pod) -> None:
        self.pods[(pod.meta.namespace, pod.meta.name)] = pod
        self.compiler.pod_changed(pod.meta.namespace, pod.meta.name, pod)

    def delete_pod(self, ref: str) -> None:
        ns, name = ref.split("/")
        del self.pods[(ns, name)]
        self.compiler.pod_changed(ns, name, None)

    def label_pod(self, ref: str, set_: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        ns, name = ref.split("/")
        pod = self.pods[(ns, name)]
        labels = {k: v for k, v in {**pod.meta.labels, **set_}.items() if k not in set(remove)}
        self.pod(replace(pod, meta=replace(pod.meta, labels=labels)))

    def label_namespace(
        self, name: str, set_: Mapping[str, str], remove: Iterable[str] = ()
    ) -> None:
        ns = self.namespaces[name]
        labels = {k: v for k, v in {**ns.meta.labels, **set_}.items() if k not in set(remove)}
        self.namespaces[name] = replace(ns, meta=replace(ns.meta, labels=labels))
        self.compiler.namespace_changed(name, self.namespaces[name])

    def apply_policy(self, manifest: Mapping[str, Any]) -> NetworkPolicy:
        policy = make_policy(manifest)
        ref = (policy.meta.namespace, policy.meta.name)
        self.policies[ref] = policy
        self.compiler.policy_changed(ref[0], ref[1], policy)
        return policy

    def delete_policy(self, namespace: str, name: str) -> None:
        del self.policies[(namespace, name)]
        self.compiler.policy_changed(namespace, name, None)

    # --- identity-allocator, then the compiler's output ---------------------------------------

    def run_allocator(self) -> None:
        if not self.allocate:
            return
        identities, ipcache = self.allocator.desired(
            self.namespaces, self.pods, self.policies.values()
        )
        _feed(self.identities, identities, self.compiler.identity_changed)
        _feed(self.ipcache, ipcache, self.compiler.ipcache_changed)

    def sync(self) -> list[Write]:
        """identity-allocator catches up, the compiler flushes, the bucket takes the writes."""
        self.run_allocator()
        if not self.compiler.started:
            self.compiler.start()
        writes = self.compiler.flush()
        for w in writes:
            if w.value is None:
                del self.bucket[w.key]
            else:
                self.bucket[w.key] = w.value
        self.writes = writes
        return writes

    def endpoint(self, ref: str) -> EndpointPolicy:
        ns, name = ref.split("/")
        pod = self.pods[(ns, name)]
        return CODEC.decode(self.bucket[catalog.policy_key(pod.node_name, ns, name)])

    def identity(self, ref: str) -> int:
        """The identity identity-allocator gave a pod (its address's ipcache entry)."""
        return self.ipcache[f"{self.pods[_ref(ref)].pod_ips[0]}/32"].identity

    def cidr_identity(self, prefix: str) -> int:
        return next(i.id for i in self.identities.values() if i.labels.cidr == prefix)

    # --- the reference datapath ---------------------------------------------------------------

    def identities_of(self, address: str, *, ipblock_matches_pods: bool) -> set[int]:
        """The address's ipcache identity; in upstream mode also its CIDR identity: the
        longest CIDR prefix holding it, known from weir-identities and weir-ipcache."""
        ip = ipaddress.ip_address(address)
        ids = {_lpm(ip, ((e.prefix, e.identity) for e in self.ipcache.values()))}
        if ipblock_matches_pods:
            cidrs = [
                (e.prefix, e.identity)
                for e in self.ipcache.values()
                if e.kind in (IPCacheKind.CIDR, IPCacheKind.WORLD)
            ]
            cidrs += [(i.labels.cidr, i.id) for i in self.identities.values() if i.labels.cidr]
            ids.add(_lpm(ip, cidrs))
        return ids

    def reaches(self, src: str, dst: str, port: int, protocol: str) -> bool:
        source, target = self.endpoint(src), self.endpoint(dst)
        proto = PROTOCOL_NUMBERS[protocol]
        src_ip = self.pods[_ref(src)].pod_ips[0]
        dst_ip = self.pods[_ref(dst)].pod_ips[0]
        out_ok = allows(
            source.egress,
            self.identities_of(dst_ip, ipblock_matches_pods=source.ipblock_matches_pods),
            proto,
            port,
        )
        in_ok = allows(
            target.ingress,
            self.identities_of(src_ip, ipblock_matches_pods=target.ipblock_matches_pods),
            proto,
            port,
        )
        return out_ok and in_ok


def allows(policy: DirectionPolicy, remotes: set[int], protocol: int, port: int) -> bool:
    """The datapath's lookup: not enforced -> allowed; else some entry must match."""
    if not policy.enforced:
        return True
    for e in policy.entries:
        if e.identity != 0 and e.identity not in remotes:
            continue
        if e.protocol not in (0, protocol):
            continue
        if e.port != 0 and not e.port <= port <= e.end_port:
            continue
        return e.verdict == "allow"
    return False


def _lpm(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, prefixes: Iterable[tuple[str, int]]
) -> int:
    best, best_len = int(Reserved.WORLD), -1
    for prefix, identity in prefixes:
        net = ipaddress.ip_network(prefix)
        if ip in net and net.prefixlen > best_len:
            best, best_len = identity, net.prefixlen
    return best


def _ref(text: str) -> tuple[str, str]:
    ns, name = text.split("/")
    return ns, name


def _feed(held: dict[str, Any], wanted: Mapping[str, Any], apply: Any) -> None:
    for key in sorted(set(held) - set(wanted)):
        del held[key]
        apply(key, None)
    for key, value in sorted(wanted.items()):
        if held.get(key) != value:
            held[key] = value
            apply(key, value)


# --- the upstream e2e model and its case files ---------------------------------------------------

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
MODEL_PODS = [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]
_TEMPLATE = re.compile(r"\$\{(ip|net):([^}:]+)(?::(\d+))?\}")


def model_cluster(settings: Settings | None = None) -> Cluster:
    """x, y, z with a, b, c each, spread over two nodes (10.244.1.0/24 and 10.244.2.0/24)."""
    cluster = Cluster(settings=settings or Settings())
    for ns in NAMESPACES:
        cluster.namespace(ns)
    for i, ref in enumerate(MODEL_PODS):
        ns, name = ref.split("/")
        node = 1 + i % 2
        cluster.pod(make_pod(ns, name, ip=f"10.244.{node}.{10 + i}", node=f"node-{node}"))
    cluster.sync()
    return cluster


def substitute(value: Any, ips: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: substitute(v, ips) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, ips) for v in value]
    if isinstance(value, str):

        def one(m: re.Match[str]) -> str:
            ip = ips[m.group(2)]
            if m.group(1) == "ip":
                return ip
            net = ipaddress.ip_network(f"{ip}/{m.group(3)}", strict=False)
            return str(net.network_address)

        return _TEMPLATE.sub(one, value)
    return value


def expected(table: Mapping[str, Any]) -> dict[tuple[str, str], bool]:
    out = {(a, b): bool(table["default"]) for a in MODEL_PODS for b in MODEL_PODS if a != b}
    for exc in table.get("exceptions") or []:
        for a, b in out:
            if _match(exc["from"], a) and _match(exc["to"], b):
                out[(a, b)] = bool(exc["expected"])
    return out


def _match(pattern: str, pod: str) -> bool:
    return pattern == "*" or fnmatch.fnmatchcase(pod, pattern)


def run_case(case: Mapping[str, Any], settings: Settings | None = None) -> tuple[list[str], int]:
    """Execute a case file against the compiler; returns (mismatches, probes judged)."""
    cluster = model_cluster(settings)
    ips = {f"{ns}/{n}": pod.pod_ips[0] for (ns, n), pod in cluster.pods.items()}
    mismatches: list[str] = []
    judged = 0

    def judge(label: str, tables: list[Mapping[str, Any]]) -> None:
        nonlocal judged
        cluster.sync()
        for table in tables:
            want = expected(table)
            for probe in table["probes"]:
                for (a, b), ok in sorted(want.items()):
                    judged += 1
                    got = cluster.reaches(a, b, int(probe["port"]), str(probe["protocol"]))
                    if got != ok:
                        mismatches.append(
                            f"[{label}] {a} -> {b} {probe['port']}/{probe['protocol']}: "
                            f"expected {'reachable' if ok else 'blocked'}"
                        )

    for i, step in enumerate(case.get("steps") or []):
        ((kind, body),) = step.items()
        if kind == "apply_policy":
            cluster.apply_policy(substitute(body, ips))
        elif kind == "delete_policy":
            cluster.delete_policy(body["namespace"], body["name"])
        elif kind == "label_pod":
            cluster.label_pod(body["pod"], body.get("set") or {}, body.get("remove") or [])
        elif kind == "label_namespace":
            cluster.label_namespace(
                body["namespace"], body.get("set") or {}, body.get("remove") or []
            )
        elif kind == "check":
            judge(f"step {i + 1}", body)
        else:
            raise ValueError(f"unknown step {kind}")
    judge("expect", case["expect"])
    return mismatches, judged
