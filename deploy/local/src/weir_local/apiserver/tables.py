"""Server-side printing: meta.k8s.io/v1 Table columns and rows per kind, as kubectl shows them.

The columns and cell rules follow kube-apiserver's pkg/printers/internalversion (priority 1 =
only with `-o wide`). Rows are computed from plain dicts; `now` is passed in so ages are
testable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .objmeta import meta, parse_time

Obj = dict[str, Any]
Column = dict[str, Any]

INCLUDE_NONE = "None"
INCLUDE_METADATA = "Metadata"
INCLUDE_OBJECT = "Object"
INCLUDE_VALUES = (INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT)


def _col(
    name: str, description: str, *, priority: int = 0, fmt: str = "", typ: str = "string"
) -> Column:
    return {
        "name": name,
        "type": typ,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_NAME = _col(
    "Name",
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated.",
    fmt="name",
)
_AGE = _col(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.",
)

COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        _NAME,
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the "
            "last container in this pod has restarted.",
        ),
        _AGE,
        _col(
            "IP",
            "IP address allocated to the pod. Routable at least within the cluster.",
            priority=1,
        ),
        _col("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
        _col(
            "Nominated Node",
            "nominatedNodeName is set when this pod preempts other pods on the node.",
            priority=1,
        ),
        _col(
            "Readiness Gates",
            "If specified, all readiness gates will be evaluated for pod readiness.",
            priority=1,
        ),
    ],
    "Service": [
        _NAME,
        _col("Type", "type determines how the Service is exposed."),
        _col("Cluster-IP", "clusterIP is the IP address of the service."),
        _col(
            "External-IP",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also "
            "accept traffic for this service.",
        ),
        _col("Port(s)", "The list of ports that are exposed by this service."),
        _AGE,
        _col(
            "Selector",
            "Route service traffic to pods with label keys and values matching this selector.",
            priority=1,
        ),
    ],
    "Node": [
        _NAME,
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _AGE,
        _col("Version", "Kubelet Version reported by the node."),
        _col("Internal-IP", "List of addresses reachable to the node.", priority=1),
        _col("External-IP", "List of addresses reachable to the node.", priority=1),
        _col("OS-Image", "OS Image reported by the node from /etc/os-release.", priority=1),
        _col("Kernel-Version", "Kernel Version reported by the node from 'uname -r'.", priority=1),
        _col("Container-Runtime", "ContainerRuntime Version reported by the node.", priority=1),
    ],
    "Namespace": [
        _NAME,
        _col("Status", "The status of the namespace"),
        _AGE,
    ],
    "EndpointSlice": [
        _NAME,
        _col(
            "AddressType",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        _col(
            "Ports",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        _col("Endpoints", "endpoints is a list of unique endpoints in this slice."),
        _AGE,
    ],
    "NetworkPolicy": [
        _NAME,
        _col(
            "Pod-Selector",
            "podSelector selects the pods to which this NetworkPolicy object applies.",
        ),
        _AGE,
    ],
    "Event": [
        _col(
            "Last Seen", "The time at which the most recent occurrence of this event was recorded."
        ),
        _col(
            "Type", "Type of this event (Normal, Warning), new types could be added in the future"
        ),
        _col(
            "Reason",
            "This should be a short, machine understandable string that gives the reason for the "
            "transition into the object's current status.",
        ),
        _col("Object", "The object that this event is about."),
        _col(
            "Subobject",
            "If referring to a piece of an object instead of an entire object, this string "
            "should contain a valid JSON/Go field access statement.",
            priority=1,
        ),
        _col("Source", "The component reporting this event.", priority=1),
        _col("Message", "A human-readable description of the status of this operation."),
        _col("First Seen", "The time at which the event was first recorded.", priority=1),
        _col("Count", "The number of times this event has occurred.", priority=1),
        _col("Name", _NAME["description"], priority=1, fmt="name"),
    ],
}
DEFAULT_COLUMNS: list[Column] = [_NAME, _col("Created At", _AGE["description"], typ="date")]


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return f"{minutes}m" if sec == 0 else f"{minutes}m{sec}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(ts: Any, now: float) -> str:
    t = parse_time(ts) if isinstance(ts, str) else None
    if t is None:
        return "<unknown>"
    return human_duration(now - t)


def _age(obj: Obj, now: float) -> str:
    return since(meta(obj).get("creationTimestamp"), now)


def format_labels(selector: Any) -> str:
    if not isinstance(selector, dict) or not selector:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def format_label_selector(sel: Any) -> str:
    """metav1.FormatLabelSelector: requirements sorted by key, `<none>` when empty."""
    if not isinstance(sel, dict):
        return "<none>"
    reqs: list[tuple[str, str]] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for e in sel.get("matchExpressions") or []:
        k, op = e.get("key", ""), e.get("operator", "")
        vals = ",".join(sorted(e.get("values") or []))
        text = {
            "In": f"{k} in ({vals})",
            "NotIn": f"{k} notin ({vals})",
            "Exists": k,
            "DoesNotExist": f"!{k}",
        }.get(op, f"{k} {op} ({vals})")
        reqs.append((k, text))
    reqs.sort(key=lambda r: r[0])
    return ",".join(t for _, t in reqs) or "<none>"


# ---- rows --------------------------------------------------------------------------------------


def pod_row(obj: Obj, now: float) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    containers = spec.get("containers") or []
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(containers) + sum(
        1 for c in init_specs.values() if c.get("restartPolicy") == "Always"
    )
    ready = 0
    restarts = 0
    last_restart = 0.0
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    def note_restart(cs: Obj) -> None:
        nonlocal last_restart
        term = ((cs.get("lastState") or {}).get("terminated")) or {}
        t = parse_time(term.get("finishedAt"))
        if t is not None and t > last_restart:
            last_restart = t

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        note_restart(cs)
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        sidecar = (init_specs.get(cs.get("name")) or {}).get("restartPolicy") == "Always"
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not initializing or initialized:
        restarts = 0
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            note_restart(cs)
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = (
                    f"Signal:{term['signal']}"
                    if term.get("signal")
                    else f"ExitCode:{term.get('exitCode', 0)}"
                )
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            reason = "Running" if pod_ready else "NotReady"
    deleting = meta(obj).get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") if ips else "") or status.get("podIP") or "<none>"
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        ok = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
        gates_text = f"{ok}/{len(gates)}"
    return [
        meta(obj).get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _age(obj, now),
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_text,
    ]


def service_row(obj: Obj, now: float) -> list[Any]:
    spec = obj.get("spec") or {}
    svc_type = spec.get("type") or ""
    ips = spec.get("clusterIPs") or []
    cluster_ip = ips[0] if ips else (spec.get("clusterIP") or "<none>")
    external = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        ext = ",".join(external) or "<none>"
    elif svc_type == "LoadBalancer":
        ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb = [i.get("ip") or i.get("hostname") or "" for i in ingress]
        lb = [x for x in lb if x]
        lb_text = ",".join(lb)
        if len(lb_text) > 16:  # upstream loadBalancerWidth, only outside -o wide
            lb_text = lb_text[:13] + "..."
        ext = ",".join(lb + external) if external else lb_text or "<pending>"
    elif svc_type == "ExternalName":
        ext = spec.get("externalName") or ""
    else:
        ext = "<unknown>"
    pieces = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return [
        meta(obj).get("name", ""),
        svc_type,
        cluster_ip,
        ext,
        ",".join(pieces) or "<none>",
        _age(obj, now),
        format_labels(spec.get("selector")),
    ]


def node_row(obj: Obj, now: float) -> list[Any]:
    status = obj.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    states: list[str] = []
    if "Ready" in conds:
        states.append("Ready" if conds["Ready"] == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if (obj.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for k, v in (meta(obj).get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        for a in status.get("addresses") or []:
            if a.get("type") == kind:
                return str(a.get("address") or "<none>")
        return "<none>"

    return [
        meta(obj).get("name", ""),
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(obj, now),
        info.get("kubeletVersion") or "",
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def namespace_row(obj: Obj, now: float) -> list[Any]:
    return [
        meta(obj).get("name", ""),
        (obj.get("status") or {}).get("phase") or "",
        _age(obj, now),
    ]


def _more(items: list[str], count: int, limit: int = 3) -> str:
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"


def endpointslice_row(obj: Obj, now: float) -> list[Any]:
    ports = []
    for p in obj.get("ports") or []:
        if p.get("port") is not None:
            ports.append(str(p["port"]))
        elif p.get("name"):
            ports.append(str(p["name"]))
        else:
            ports.append("*")
    addrs = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        meta(obj).get("name", ""),
        obj.get("addressType") or "",
        _more(ports, len(ports)),
        _more(addrs, len(addrs)),
        _age(obj, now),
    ]


def networkpolicy_row(obj: Obj, now: float) -> list[Any]:
    return [
        meta(obj).get("name", ""),
        format_label_selector((obj.get("spec") or {}).get("podSelector")),
        _age(obj, now),
    ]


def event_row(obj: Obj, now: float) -> list[Any]:
    first = since(obj.get("firstTimestamp"), now)
    if not obj.get("firstTimestamp"):
        first = since(obj.get("eventTime"), now)
    last = since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 0
    series = obj.get("series")
    if isinstance(series, dict):
        last = since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif not count:
        count = 1
    inv = obj.get("involvedObject") or {}
    target = (inv.get("kind") or "").lower()
    if inv.get("name"):
        target = f"{target}/{inv['name']}"
    src = obj.get("source") or {}
    if src.get("component"):
        source = src["component"] + (f", {src['host']}" if src.get("host") else "")
    else:
        rc, ri = obj.get("reportingComponent") or "", obj.get("reportingInstance") or ""
        source = rc + (f", {ri}" if ri else "")
    return [
        last,
        obj.get("type") or "",
        obj.get("reason") or "",
        target,
        inv.get("fieldPath") or "",
        source,
        (obj.get("message") or "").strip(),
        first,
        int(count),
        meta(obj).get("name", ""),
    ]


def default_row(obj: Obj, now: float) -> list[Any]:
    return [meta(obj).get("name", ""), meta(obj).get("creationTimestamp")]


ROWS: dict[str, Callable[[Obj, float], list[Any]]] = {
    "Pod": pod_row,
    "Service": service_row,
    "Node": node_row,
    "Namespace": namespace_row,
    "EndpointSlice": endpointslice_row,
    "NetworkPolicy": networkpolicy_row,
    "Event": event_row,
}


def columns_for(kind: str) -> list[Column]:
    return COLUMNS.get(kind, DEFAULT_COLUMNS)


def row_for(kind: str, obj: Obj, now: float, include: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": ROWS.get(kind, default_row)(obj, now)}
    if include == INCLUDE_OBJECT:
        row["object"] = obj
    elif include == INCLUDE_METADATA:
        row["object"] = partial_metadata(obj)
    return row


def partial_metadata(obj: Obj) -> Obj:
    m = {k: v for k, v in meta(obj).items() if k != "managedFields"}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": m}


def table(
    kind: str,
    objs: Iterable[Obj],
    now: float,
    *,
    include: str = INCLUDE_METADATA,
    list_meta: Obj | None = None,
    headers: bool = True,
) -> Obj:
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {}}
    if headers:
        out["columnDefinitions"] = columns_for(kind)
    out["rows"] = [row_for(kind, o, now, include) for o in objs]
    return out
