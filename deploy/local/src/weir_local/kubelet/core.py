"""What to do for one pod, given what the API wants and what the node has: the pure core.

The reconcile loop reads the desired pod (or its absence) and the actual sandbox, asks
`decide` for one action, performs it, and writes status. Each action is safe to repeat: the
next reconcile sees the new actual state and, if the step was completed, decides NONE.

    pod       sandbox                         action
    ------    ------------------------------  -----------------------------------------------
    absent    none                            NONE
    absent    any                             TEARDOWN   (deleted while we were away, or removed
                                                          by the API server's grace expiry)
    deleting  none                            FINALIZE   (delete the API object, grace 0)
    deleting  any                             TERMINATE  (not ready, stop, DEL, netns, delete)
    terminal  any / none                      TEARDOWN / NONE
    running   none                            SETUP
    running   adding / orphan / netns gone    REBUILD    (teardown, then setup)
    running   ready, not served (restart)     ADOPT      (CHECK, serve again; REBUILD if broken)
    running   ready and served                NONE       (status only)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Stage(enum.StrEnum):
    NONE = "none"  # nothing on the node for this pod
    ADDING = "adding"  # a record says ADD started; its outcome is unknown (crash)
    READY = "ready"  # ADD succeeded; the result is kept
    ORPHAN = "orphan"  # a namespace with our prefix and no record


class Action(enum.StrEnum):
    NONE = "none"
    SETUP = "setup"
    ADOPT = "adopt"
    REBUILD = "rebuild"
    TEARDOWN = "teardown"
    TERMINATE = "terminate"
    FINALIZE = "finalize"


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the kubelet reads of a pod."""

    uid: str
    namespace: str
    name: str
    ports: tuple[int, ...]
    deleting: bool
    terminal: bool
    host_network: bool
    generation: int


@dataclass(frozen=True, slots=True)
class SandboxView:
    """What the node has for a pod."""

    stage: Stage = Stage.NONE
    serving: bool = False  # its ports are answered by this process
    netns_present: bool = True


def container_ports(spec: Mapping[str, Any]) -> tuple[int, ...]:
    """Every containerPort the pod declares (sidecar init containers included), each served
    on both TCP and UDP whatever protocol it names."""
    ports: set[int] = set()
    sidecars = [
        c for c in spec.get("initContainers") or [] if (c or {}).get("restartPolicy") == "Always"
    ]
    for c in [*(spec.get("containers") or []), *sidecars]:
        for p in (c or {}).get("ports") or []:
            port = (p or {}).get("containerPort")
            if isinstance(port, int) and 0 < port < 65536:
                ports.add(port)
    return tuple(sorted(ports))


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase")
    return PodInfo(
        uid=str(meta.get("uid") or ""),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        ports=container_ports(spec),
        deleting=bool(meta.get("deletionTimestamp")),
        terminal=phase in ("Succeeded", "Failed"),
        host_network=bool(spec.get("hostNetwork")),
        generation=int(meta.get("generation") or 1),
    )


def decide(pod: PodInfo | None, sandbox: SandboxView) -> Action:
    has_sandbox = sandbox.stage is not Stage.NONE
    if pod is None or pod.terminal:
        return Action.TEARDOWN if has_sandbox else Action.NONE
    if pod.deleting:
        return Action.TERMINATE if has_sandbox else Action.FINALIZE
    if not has_sandbox:
        return Action.SETUP
    if sandbox.stage is not Stage.READY or not sandbox.netns_present:
        return Action.REBUILD
    if not sandbox.serving:
        return Action.ADOPT
    return Action.NONE
