"""The scheduler: binds every pending pod to a schedulable node, round-robin.

A node fits a pod when it passes, in kube-scheduler's filter order:

- NodeUnschedulable: `spec.unschedulable` counts as the taint
  `node.kubernetes.io/unschedulable:NoSchedule` ("node(s) were unschedulable");
- TaintToleration: every NoSchedule/NoExecute taint is tolerated (Kubernetes toleration
  semantics). A node whose Ready condition is not True carries the NoSchedule taint the node
  lifecycle controller would add, `node.kubernetes.io/not-ready` (Ready False) or
  `node.kubernetes.io/unreachable` (Unknown or no condition): so a not-ready node takes no
  pods, except pods that tolerate exactly that, as in a real cluster;
- NodeAffinity: `spec.nodeSelector` and required node affinity (matchExpressions, matchFields).

Among the nodes that fit, the one after the last chosen (by name, wrapping) wins. Binding goes
through `Api.bind`, the POST pods/binding path. A pod that fits nowhere gets PodScheduled=False
(reason Unschedulable, kube-scheduler's message) and a FailedScheduling event (unless there
are no nodes at all: then it just waits, unwritten), and is retried
whenever a node changes in a way that matters (taints, labels, readiness, unschedulable) or the
pod's spec changes. Node heartbeats change nothing the scheduler looks at, so they cost a
comparison; a relevant node change re-examines only the pending pods.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import StatusError
from ..objmeta import format_epoch, meta
from ..operations import Api
from ..store import DELETED, WatchEvent

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER = "default-scheduler"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
FILTERED_EFFECTS = ("NoSchedule", "NoExecute")

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_SELECTOR = "node(s) didn't match Pod's node affinity/selector"

PodKey = tuple[str, str]  # (namespace, name)
Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class NodeView:
    """What scheduling reads of a node; equal views mean nothing changed for the scheduler."""

    name: str
    labels: tuple[tuple[str, str], ...]
    unschedulable: bool
    taints: tuple[Taint, ...]  # NoSchedule/NoExecute only, implicit readiness taint included

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


# ---- pure rules ------------------------------------------------------------------------------


def node_view(node: Mapping[str, Any]) -> NodeView:
    spec = node.get("spec") or {}
    labels = meta(node).get("labels") or {}
    taints = [
        Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        for t in spec.get("taints") or []
        if isinstance(t, dict) and t.get("effect") in FILTERED_EFFECTS
    ]
    ready = next(
        (
            c.get("status")
            for c in (node.get("status") or {}).get("conditions") or []
            if isinstance(c, dict) and c.get("type") == "Ready"
        ),
        None,
    )
    if ready != "True":
        key = NOT_READY_TAINT if ready == "False" else UNREACHABLE_TAINT
        if not any(t.key == key and t.effect == "NoSchedule" for t in taints):
            taints.append(Taint(key, "", "NoSchedule"))
    return NodeView(
        name=str(meta(node).get("name") or ""),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        unschedulable=bool(spec.get("unschedulable")),
        taints=tuple(taints),
    )


def tolerates(toleration: Mapping[str, Any], taint: Taint) -> bool:
    """Toleration.ToleratesTaint: empty effect matches all effects, empty key with Exists
    matches all keys; the operator defaults to Equal."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.effect:
        return False
    key = toleration.get("key") or ""
    if key and key != taint.key:
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == taint.value
    return False


def _tolerated(tolerations: Iterable[Mapping[str, Any]], taint: Taint) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def _requirement_matches(req: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    key = str(req.get("key") or "")
    op = req.get("operator")
    wanted = [str(v) for v in req.get("values") or []]
    present = key in values
    if op == "In":
        return present and values[key] in wanted
    if op == "NotIn":
        return not present or values[key] not in wanted
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(wanted) == 1:
        try:
            have, limit = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > limit if op == "Gt" else have < limit
    return False


def _term_matches(term: Mapping[str, Any], node: NodeView) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    labels = node.label_map()
    return all(_requirement_matches(r, labels) for r in exprs) and all(
        _requirement_matches(r, {"metadata.name": node.name}) for r in fields
    )


def _affinity_matches(spec: Mapping[str, Any], node: NodeView) -> bool:
    selector = spec.get("nodeSelector") or {}
    labels = node.label_map()
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is None:
        return True
    return any(_term_matches(t, node) for t in terms)  # terms are ORed


def unfit_reason(spec: Mapping[str, Any], node: NodeView) -> str | None:
    """Why `node` cannot run a pod with `spec` (kube-scheduler's wording), or None if it can."""
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    if node.unschedulable and not _tolerated(
        tolerations, Taint(UNSCHEDULABLE_TAINT, "", "NoSchedule")
    ):
        return REASON_UNSCHEDULABLE
    for taint in node.taints:
        if not _tolerated(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
    if not _affinity_matches(spec, node):
        return REASON_SELECTOR
    return None


def unschedulable_message(total: int, reasons: Iterable[str]) -> str:
    """FitError's message: `0/N nodes are available: <count> <reason>, ... .`"""
    if total == 0:
        return "no nodes available to schedule pods"
    histogram = Counter(reasons)
    parts = sorted(f"{n} {reason}" for reason, n in histogram.items())
    return f"0/{total} nodes are available: " + ", ".join(parts) + "."


def pick(nodes: list[NodeView], spec: Mapping[str, Any], after: str) -> tuple[str | None, str]:
    """(chosen node, "") or (None, unschedulable message). `nodes` sorted by name; the first
    fitting node named after `after` wins, wrapping around (round-robin)."""
    fitting: list[str] = []
    reasons: list[str] = []
    for node in nodes:
        reason = unfit_reason(spec, node)
        if reason is None:
            fitting.append(node.name)
        else:
            reasons.append(reason)
    if not fitting:
        return None, unschedulable_message(len(nodes), reasons)
    return next((n for n in fitting if n > after), fitting[0]), ""


def wants_scheduling(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and not meta(pod).get("deletionTimestamp")
        and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )


# ---- the controller --------------------------------------------------------------------------


class SchedulerController:
    def __init__(self, api: Api) -> None:
        self.api = api
        self._pods = api.resources.by_key("pods")
        self._events = api.resources.by_key("events")
        self._nodes: dict[str, NodeView] = {}
        self._sorted: list[NodeView] | None = None
        self._pending: set[PodKey] = set()
        self._dirty: set[PodKey] = set()
        self._last = ""  # the node chosen last (round-robin cursor)
        self._wake = asyncio.Event()
        self.binds = 0  # for tests and debugging
        api.store.add_listener(self.on_event)

    # ---- event side: cheap, synchronous ------------------------------------------------------

    def on_event(self, ev: WatchEvent) -> None:
        if ev.resource == "nodes":
            view = None if ev.type == DELETED else node_view(ev.entry.obj)
            if self._nodes.get(ev.name) == view:
                return  # a heartbeat or a change the scheduler does not read
            if view is None:
                self._nodes.pop(ev.name, None)
            else:
                self._nodes[ev.name] = view
            self._sorted = None
            if self._pending:
                self._dirty |= self._pending
                self._wake.set()
        elif ev.resource == "pods":
            key = (ev.namespace, ev.name)
            if ev.type == DELETED or not wants_scheduling(ev.entry.obj):
                self._pending.discard(key)
                self._dirty.discard(key)
                return
            spec_changed = ev.old is None or ev.old.obj.get("spec") != ev.entry.obj.get("spec")
            if key not in self._pending or spec_changed:
                # Our own condition writes change only status: they do not re-trigger.
                self._pending.add(key)
                self._dirty.add(key)
                self._wake.set()

    # ---- worker ------------------------------------------------------------------------------

    def resync_all(self) -> None:
        store = self.api.store
        self._nodes = {e.obj["metadata"]["name"]: node_view(e.obj) for e in store.entries("nodes")}
        self._sorted = None
        self._pending = {
            (e.obj["metadata"]["namespace"], e.obj["metadata"]["name"])
            for e in store.entries("pods")
            if wants_scheduling(e.obj)
        }
        self._dirty = set(self._pending)
        self._wake.set()

    async def run(self) -> None:
        self.resync_all()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                batch = self._ordered(self._dirty)
                self._dirty.clear()
                for key in batch:
                    self.schedule(*key)
                    await asyncio.sleep(0)  # let requests in between binds

    def _ordered(self, keys: set[PodKey]) -> list[PodKey]:
        """Oldest first, as the scheduling queue would pop them (creation time, then name)."""

        def created(key: PodKey) -> tuple[str, str, str]:
            entry = self.api.store.get("pods", *key)
            ts = meta(entry.obj).get("creationTimestamp", "") if entry is not None else ""
            return (str(ts), key[0], key[1])

        return sorted(keys, key=created)

    def _node_list(self) -> list[NodeView]:
        if self._sorted is None:
            self._sorted = sorted(self._nodes.values(), key=lambda n: n.name)
        return self._sorted

    def schedule(self, namespace: str, name: str) -> str | None:
        """Bind one pod if it still wants a node; returns the node chosen, if any."""
        entry = self.api.store.get("pods", namespace, name)
        if entry is None or not wants_scheduling(entry.obj):
            self._pending.discard((namespace, name))
            return None
        spec = entry.obj.get("spec") or {}
        nodes = self._node_list()
        if not nodes:
            # A cluster with no nodes yet (an API server on its own, or before the first
            # kubelet registers): the pod just waits, with no status write to churn watchers.
            return None
        node, message = pick(nodes, spec, self._last)
        if node is None:
            self._mark_unschedulable(entry.obj, message)
            return None
        try:
            self.api.bind(namespace, name, {"target": {"kind": "Node", "name": node}})
        except StatusError as e:
            log.info("scheduler: binding %s/%s to %s: %s", namespace, name, node, e.message)
            return None
        self._last = node
        self.binds += 1
        self._pending.discard((namespace, name))
        self._event(
            entry.obj, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}"
        )
        return node

    def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        status = pod.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if (
            current is not None
            and current.get("status") == "False"
            and current.get("reason") == "Unschedulable"
            and current.get("message") == message
        ):
            return  # already says so: no write, no event
        transition = (
            current.get("lastTransitionTime")
            if current is not None and current.get("status") == "False"
            else None
        ) or format_epoch(self.api.clock())
        cond = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": transition,
        }
        others = [c for c in conditions if c.get("type") != "PodScheduled"]
        m = pod["metadata"]
        body = orjson.dumps({"status": {"conditions": [*others, cond]}})
        try:
            self.api.patch(
                self._pods, m["namespace"], m["name"], "merge", body, subresource="status"
            )
        except StatusError as e:
            log.info("scheduler: status of %s/%s: %s", m["namespace"], m["name"], e.message)
            return
        self._event(pod, "Warning", "FailedScheduling", message)

    def _event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about the pod from default-scheduler (best effort)."""
        m = pod["metadata"]
        now = format_epoch(self.api.clock())
        body = {
            "metadata": {"name": f"{m['name']}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": m["namespace"],
                "name": m["name"],
                "uid": m.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": DEFAULT_SCHEDULER},
            "reportingComponent": DEFAULT_SCHEDULER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.api.create(self._events, m["namespace"], body, field_validation="Ignore")
        except StatusError as e:
            log.debug("scheduler: event for %s/%s: %s", m["namespace"], m["name"], e.message)
