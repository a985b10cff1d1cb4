"""Per-kind write strategies: what create, update, status writes and delete do beyond storing.

Mirrors the strategies of kube-apiserver's pkg/registry: status wiped on create and kept on
update for kinds with a status subresource, the namespace name label and `kubernetes`
finalizer, pod QoS class and graceful deletion periods, and Service ClusterIP / NodePort
allocation (kept through `AllocationTxn`, so a failed or dry-run write gives back what it took).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .allocators import AllocationError, ClusterIPAllocator, NodePortAllocator
from .errors import FieldError, invalid
from .objmeta import deep_copy

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NAMESPACE_FINALIZER = "kubernetes"
DEFAULT_POD_GRACE_SECONDS = 30

Obj = dict[str, Any]


@dataclass
class AllocationTxn:
    """Allocations made by one write: rolled back on failure or dry run, and releases that
    take effect only once the write is committed."""

    undo: list[Callable[[], None]] = field(default_factory=list)
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    def rollback(self) -> None:
        for fn in reversed(self.undo):
            fn()
        self.undo.clear()
        self.on_commit.clear()

    def commit(self) -> None:
        for fn in self.on_commit:
            fn()
        self.undo.clear()
        self.on_commit.clear()


class Strategy:
    """Default behaviour; subclasses override the hooks their kind needs."""

    def prepare_create(self, obj: Obj) -> None:
        """Before defaulting: kind-specific initial values."""

    def after_defaults_create(self, obj: Obj) -> None:
        """After defaulting, before validation."""

    def prepare_update(self, new: Obj, old: Obj) -> None:
        """Main-resource update, before defaulting (status already carried over)."""

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        """Status update: `new` already has the old spec; adjust what else is kept."""

    def allocate_create(self, obj: Obj, txn: AllocationTxn) -> list[FieldError]:
        return []

    def allocate_update(self, new: Obj, old: Obj, txn: AllocationTxn) -> list[FieldError]:
        return []

    def release(self, obj: Obj) -> None:
        """The object left the store."""

    def restore(self, obj: Obj) -> None:
        """A stored object was loaded at start (rebuild allocations)."""

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        """Seconds of graceful deletion for a first DELETE (0 = not graceful)."""
        return 0


class NamespaceStrategy(Strategy):
    def prepare_create(self, obj: Obj) -> None:
        _ensure_name_label(obj)
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        finalizers = list(spec.get("finalizers") or [])
        if NAMESPACE_FINALIZER not in finalizers:
            finalizers.append(NAMESPACE_FINALIZER)
        spec["finalizers"] = finalizers

    def prepare_update(self, new: Obj, old: Obj) -> None:
        _ensure_name_label(new)
        # spec.finalizers change only through the finalize subresource (the controller).
        new["spec"] = deep_copy(old.get("spec") or {})

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        _ensure_name_label(new)


def _ensure_name_label(obj: Obj) -> None:
    meta = obj["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[NAMESPACE_NAME_LABEL] = meta["name"]
    meta["labels"] = labels


class PodStrategy(Strategy):
    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def after_defaults_create(self, obj: Obj) -> None:
        obj.setdefault("status", {})["qosClass"] = pod_qos_class(obj.get("spec") or {})

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        # As upstream: the kubelet's status writes may not touch owner references.
        meta = new["metadata"]
        refs = old["metadata"].get("ownerReferences")
        if refs is None:
            meta.pop("ownerReferences", None)
        else:
            meta["ownerReferences"] = deep_copy(refs)

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        spec = obj.get("spec") or {}
        if requested is not None:
            period = requested
        else:
            tgps = spec.get("terminationGracePeriodSeconds")
            period = tgps if isinstance(tgps, int) else DEFAULT_POD_GRACE_SECONDS
        if not spec.get("nodeName"):
            period = 0  # never scheduled: nothing to stop
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            period = 0  # already terminated
        return 1 if period < 0 else period


def pod_qos_class(spec: Obj) -> str:
    """BestEffort / Burstable / Guaranteed from container requests and limits (cpu, memory)."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        for r in ("cpu", "memory"):
            if r in req or r in lim:
                any_set = True
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


class ServiceStrategy(Strategy):
    """ClusterIP and NodePort allocation for Services."""

    def __init__(self, ips: ClusterIPAllocator, ports: NodePortAllocator) -> None:
        self.ips = ips
        self.ports = ports

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        nspec = new.setdefault("spec", {})
        ospec = old.get("spec") or {}
        _drop_type_dependent_fields(nspec, ospec)
        # Upstream patchAllocatedValues: a write that omits allocated values keeps them.
        if _needs_cluster_ip(ospec) and _needs_cluster_ip(nspec):
            if not nspec.get("clusterIP") and ospec.get("clusterIP"):
                nspec["clusterIP"] = ospec["clusterIP"]
            if (
                not nspec.get("clusterIPs")
                and ospec.get("clusterIPs")
                and nspec.get("clusterIP") in (None, ospec.get("clusterIP"))
            ):
                nspec["clusterIPs"] = list(ospec["clusterIPs"])
        if _needs_node_ports(ospec) and _needs_node_ports(nspec):
            old_ports = {
                (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in ospec.get("ports") or []
            }
            for p in nspec.get("ports") or []:
                if isinstance(p, dict) and not p.get("nodePort"):
                    np = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                    if np:
                        p["nodePort"] = np
        if (
            _needs_health_check(ospec)
            and _needs_health_check(nspec)
            and not nspec.get("healthCheckNodePort")
            and ospec.get("healthCheckNodePort")
        ):
            nspec["healthCheckNodePort"] = ospec["healthCheckNodePort"]

    def allocate_create(self, obj: Obj, txn: AllocationTxn) -> list[FieldError]:
        spec = obj.setdefault("spec", {})
        errors: list[FieldError] = []
        if spec.get("type", "ClusterIP") != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        if _needs_cluster_ip(spec):
            err = self._allocate_ip(spec, txn)
            if err:
                errors.append(err)
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        errors += self._allocate_node_ports(spec, None, txn)
        return errors

    def allocate_update(self, new: Obj, old: Obj, txn: AllocationTxn) -> list[FieldError]:
        nspec = new.setdefault("spec", {})
        ospec = old.get("spec") or {}
        errors: list[FieldError] = []
        old_ip = ospec.get("clusterIP") if _needs_cluster_ip(ospec) else None
        if _needs_cluster_ip(nspec):
            if nspec.get("type", "ClusterIP") != "ExternalName":
                nspec.setdefault("ipFamilies", ["IPv4"])
                nspec.setdefault("ipFamilyPolicy", "SingleStack")
            if not old_ip or nspec.get("clusterIP") not in (None, "", old_ip):
                err = self._allocate_ip(nspec, txn)
                if err:
                    errors.append(err)
                elif old_ip:
                    txn.on_commit.append(partial(self.ips.release, old_ip))
        elif old_ip:
            txn.on_commit.append(partial(self.ips.release, old_ip))
        old_ports = set(_node_ports(ospec)) if _needs_node_ports(ospec) else set()
        errors += self._allocate_node_ports(nspec, old_ports, txn)
        kept = set(_node_ports(nspec)) if _needs_node_ports(nspec) else set()
        if _needs_health_check(nspec) and nspec.get("healthCheckNodePort"):
            kept.add(nspec["healthCheckNodePort"])
        old_hc = ospec.get("healthCheckNodePort") if _needs_health_check(ospec) else None
        for port in old_ports | ({old_hc} if old_hc else set()):
            if port not in kept:
                txn.on_commit.append(partial(self.ports.release, port))
        return errors

    def _allocate_ip(self, spec: Obj, txn: AllocationTxn) -> FieldError | None:
        requested = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
        try:
            ip = self.ips.allocate(requested or None)
        except AllocationError as e:
            return invalid("spec.clusterIPs", [requested] if requested else [], str(e))
        txn.undo.append(partial(self.ips.release, ip))
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        return None

    def _allocate_node_ports(
        self, spec: Obj, old_ports: set[int] | None, txn: AllocationTxn
    ) -> list[FieldError]:
        errors: list[FieldError] = []
        owned = old_ports or set()
        if _needs_node_ports(spec):
            taken_here: dict[int, str] = {}
            for i, p in enumerate(spec.get("ports") or []):
                if not isinstance(p, dict):
                    continue
                proto = p.get("protocol", "TCP")
                want = p.get("nodePort") or None
                if want is not None and (want in owned or taken_here.get(want, proto) != proto):
                    # Kept from the old object, or shared by another protocol of this Service.
                    taken_here[want] = proto
                    continue
                try:
                    got = self.ports.allocate(want)
                except AllocationError as e:
                    errors.append(invalid(f"spec.ports[{i}].nodePort", want or 0, str(e)))
                    continue
                txn.undo.append(partial(self.ports.release, got))
                taken_here[got] = proto
                p["nodePort"] = got
        if _needs_health_check(spec):
            want = spec.get("healthCheckNodePort") or None
            if want is None or want not in owned:
                try:
                    got = self.ports.allocate(want)
                except AllocationError as e:
                    errors.append(invalid("spec.healthCheckNodePort", want or 0, str(e)))
                else:
                    txn.undo.append(partial(self.ports.release, got))
                    spec["healthCheckNodePort"] = got
        return errors

    def release(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if _needs_cluster_ip(spec) and spec.get("clusterIP"):
            self.ips.release(spec["clusterIP"])
        if _needs_node_ports(spec):
            for port in _node_ports(spec):
                self.ports.release(port)
        if _needs_health_check(spec) and spec.get("healthCheckNodePort"):
            self.ports.release(spec["healthCheckNodePort"])

    def restore(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if _needs_cluster_ip(spec) and spec.get("clusterIP"):
            self.ips.reserve_existing(spec["clusterIP"])
        if _needs_node_ports(spec):
            for port in _node_ports(spec):
                self.ports.reserve_existing(port)
        if _needs_health_check(spec) and spec.get("healthCheckNodePort"):
            self.ports.reserve_existing(spec["healthCheckNodePort"])


def _drop_type_dependent_fields(nspec: Obj, ospec: Obj) -> None:
    """Upstream dropTypeDependentFields: a type change drops the values the old type needed,
    when the client left them as they were."""
    if _needs_cluster_ip(ospec) and not _needs_cluster_ip(nspec):
        if nspec.get("clusterIP") == ospec.get("clusterIP") and nspec.get("clusterIP") != "None":
            nspec.pop("clusterIP", None)
        if nspec.get("clusterIPs") == ospec.get("clusterIPs"):
            nspec.pop("clusterIPs", None)
        if nspec.get("type") == "ExternalName":
            for k in ("ipFamilies", "ipFamilyPolicy"):
                if nspec.get(k) == ospec.get(k):
                    nspec.pop(k, None)
    if _needs_node_ports(ospec) and not _needs_node_ports(nspec):
        old_ports = set(_node_ports(ospec))
        for p in nspec.get("ports") or []:
            if isinstance(p, dict) and p.get("nodePort") in old_ports:
                p.pop("nodePort", None)
    if (
        _needs_health_check(ospec)
        and not _needs_health_check(nspec)
        and nspec.get("healthCheckNodePort") == ospec.get("healthCheckNodePort")
    ):
        nspec.pop("healthCheckNodePort", None)
    if ospec.get("type") == "LoadBalancer" and nspec.get("type") != "LoadBalancer":
        for k in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if nspec.get(k) == ospec.get(k):
                nspec.pop(k, None)


def _needs_cluster_ip(spec: Obj) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def _needs_node_ports(spec: Obj) -> bool:
    t = spec.get("type", "ClusterIP")
    if t == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False:
        return False
    return t in _NODE_PORT_TYPES


def _needs_health_check(spec: Obj) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _node_ports(spec: Obj) -> list[int]:
    return [
        p["nodePort"]
        for p in spec.get("ports") or []
        if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]
    ]


def build_strategies(ips: ClusterIPAllocator, ports: NodePortAllocator) -> dict[str, Strategy]:
    """Strategies by resource key; kinds not listed get the default `Strategy`."""
    return {
        "namespaces": NamespaceStrategy(),
        "pods": PodStrategy(),
        "services": ServiceStrategy(ips, ports),
    }
