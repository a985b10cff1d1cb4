"""Pod status as the kubelet reports it, and the core/v1 Events it posts: pure builders.

`desired_status` computes the whole status the kubelet owns from what the node observed;
`status_patch` compares it with the pod's current status and returns a merge patch only when
something differs, so a settled pod costs no write (a restarted kubelet re-adopting its pods
computes the same status from its records and writes nothing). Condition transition times are
kept while a condition's status stays the same.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
COMPONENT = "kubelet"
CONDITION_ORDER = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)
OWNED_FIELDS = (
    "phase",
    "conditions",
    "hostIP",
    "hostIPs",
    "podIP",
    "podIPs",
    "startTime",
    "containerStatuses",
    "initContainerStatuses",
    "observedGeneration",
)


def rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def container_id(uid: str) -> str:
    return f"weir://{uid}"


def image_id(image: str) -> str:
    return f"weir-local://{image}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """What the node knows about one pod's sandbox."""

    host_ip: str
    pod_ips: tuple[str, ...] = ()
    start_time: str  # when the kubelet took the pod on
    started_at: str | None = None  # containers running since; None while the sandbox is made
    ready: bool = False  # serving (False while terminating)
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""


def _condition(
    ctype: str, ok: bool, now: str, current: Mapping[str, Obj], generation: int, **why: str
) -> Obj:
    status = "True" if ok else "False"
    old = current.get(ctype) or {}
    cond: Obj = {
        "type": ctype,
        "status": status,
        "observedGeneration": generation,
        "lastTransitionTime": old.get("lastTransitionTime")
        if old.get("status") == status and old.get("lastTransitionTime")
        else now,
    }
    if not ok:
        cond.update({k: v for k, v in why.items() if v})
    return cond


def desired_status(pod: Mapping[str, Any], obs: Observed, now: str) -> Obj:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    generation = int(meta.get("generation") or 1)
    current = {
        str(c.get("type")): c
        for c in (pod.get("status") or {}).get("conditions") or []
        if isinstance(c, dict)
    }
    running = obs.started_at is not None
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    unready = [str(c.get("name")) for c in containers] if not obs.ready else []
    not_ready = {
        "reason": "ContainersNotReady",
        "message": f"containers with unready status: [{' '.join(unready)}]",
    }
    conditions = [
        _condition("PodReadyToStartContainers", running, now, current, generation),
        _condition("Initialized", True, now, current, generation),
        _condition("Ready", obs.ready, now, current, generation, **not_ready),
        _condition("ContainersReady", obs.ready, now, current, generation, **not_ready),
        _condition("PodScheduled", True, now, current, generation),
    ]
    uid = str(meta.get("uid") or "")
    statuses = [_container_status(c, uid, obs) for c in containers]
    out: Obj = {
        "phase": "Running" if running else "Pending",
        "conditions": conditions,
        "hostIP": obs.host_ip,
        "hostIPs": [{"ip": obs.host_ip}],
        # Set once, when the kubelet first took the pod on; a rebuilt sandbox keeps it.
        "startTime": (pod.get("status") or {}).get("startTime") or obs.start_time,
        "containerStatuses": statuses,
        "observedGeneration": generation,
    }
    if obs.pod_ips:
        out["podIP"] = obs.pod_ips[0]
        out["podIPs"] = [{"ip": ip} for ip in obs.pod_ips]
    inits = [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    if inits:
        out["initContainerStatuses"] = [_init_status(c, uid, obs) for c in inits]
    return out


def _container_status(c: Mapping[str, Any], uid: str, obs: Observed) -> Obj:
    image = str(c.get("image") or "")
    out: Obj = {"name": str(c.get("name")), "image": image, "restartCount": 0}
    if obs.started_at is None:
        waiting: Obj = {"reason": obs.waiting_reason}
        if obs.waiting_message:
            waiting["message"] = obs.waiting_message
        out.update(imageID="", ready=False, started=False, state={"waiting": waiting})
        return out
    out.update(
        imageID=image_id(image),
        containerID=container_id(uid),
        ready=obs.ready,
        started=True,
        state={"running": {"startedAt": obs.started_at}},
    )
    return out


def _init_status(c: Mapping[str, Any], uid: str, obs: Observed) -> Obj:
    """Init containers ran to completion as the sandbox came up (sidecars keep running)."""
    if c.get("restartPolicy") == "Always":
        return _container_status(c, uid, obs)
    image = str(c.get("image") or "")
    out: Obj = {"name": str(c.get("name")), "image": image, "restartCount": 0}
    if obs.started_at is None:
        out.update(
            imageID="", ready=False, started=False, state={"waiting": {"reason": "PodInitializing"}}
        )
        return out
    terminated = {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": obs.started_at,
        "finishedAt": obs.started_at,
        "containerID": container_id(uid),
    }
    out.update(
        imageID=image_id(image),
        containerID=container_id(uid),
        ready=True,
        started=False,
        state={"terminated": terminated},
    )
    return out


def _normal(value: Any) -> Any:
    """Drop nulls and empty containers, as the API server's decoding does, for comparison."""
    if isinstance(value, dict):
        out = {k: _normal(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v not in ({}, [])}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _comparable(status: Mapping[str, Any]) -> Obj:
    out = {k: _normal(status.get(k)) for k in OWNED_FIELDS}
    conds = out.get("conditions") or []
    out["conditions"] = sorted(conds, key=lambda c: str(c.get("type")))
    return {k: v for k, v in out.items() if v is not None and v not in ({}, [])}


def status_patch(pod: Mapping[str, Any], desired: Obj) -> Obj | None:
    """A merge patch for the pod's status subresource, or None when nothing would change.

    Conditions the kubelet does not own (the scheduler's, a readiness gate's) are kept."""
    current = pod.get("status") or {}
    owned = {str(c.get("type")) for c in desired.get("conditions") or []}
    foreign = [
        c
        for c in current.get("conditions") or []
        if isinstance(c, dict) and c.get("type") not in owned
    ]
    body = dict(desired)
    body["conditions"] = [*desired.get("conditions", []), *foreign]
    for k in OWNED_FIELDS:
        if k not in body and k in current:
            body[k] = None  # merge patch: remove (a pod IP from a sandbox that is gone)
    if _comparable(body) == _comparable(current):
        return None
    # A uid that names another pod makes a real API server refuse the write (409): a pod
    # recreated under the same name never gets this one's status.
    meta = pod.get("metadata") or {}
    return {"metadata": {"uid": meta.get("uid")}, "status": body}


def event(
    pod: Mapping[str, Any], *, type_: str, reason: str, message: str, node: str, now: str
) -> Obj:
    """A core/v1 Event about the pod from this node's kubelet."""
    meta = pod.get("metadata") or {}
    return {
        "metadata": {
            "name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": {
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": COMPONENT, "host": node},
        "reportingComponent": COMPONENT,
        "reportingInstance": node,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
