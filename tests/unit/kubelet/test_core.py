"""The kubelet's decisions: one action per (desired pod, actual sandbox)."""

from __future__ import annotations

from typing import Any

import pytest
from weir_local.kubelet.core import (
    Action,
    PodInfo,
    SandboxView,
    Stage,
    container_ports,
    decide,
    pod_info,
)


def info(**kw: Any) -> PodInfo:
    base: dict[str, Any] = {
        "uid": "u1",
        "namespace": "ns",
        "name": "p",
        "ports": (80,),
        "deleting": False,
        "terminal": False,
        "host_network": False,
        "generation": 1,
    }
    return PodInfo(**{**base, **kw})


RUNNING = info()
DELETING = info(deleting=True)
TERMINAL = info(terminal=True)
NONE = SandboxView()
SERVED = SandboxView(stage=Stage.READY, serving=True)
READY_UNSERVED = SandboxView(stage=Stage.READY, serving=False)
ADDING = SandboxView(stage=Stage.ADDING)
ORPHAN = SandboxView(stage=Stage.ORPHAN)
NETNS_GONE = SandboxView(stage=Stage.READY, serving=True, netns_present=False)


@pytest.mark.parametrize(
    ("pod", "sandbox", "action"),
    [
        (None, NONE, Action.NONE),
        (None, SERVED, Action.TEARDOWN),  # deleted while away / removed by grace expiry
        (None, ORPHAN, Action.TEARDOWN),
        (None, ADDING, Action.TEARDOWN),
        (DELETING, NONE, Action.FINALIZE),
        (DELETING, SERVED, Action.TERMINATE),
        (DELETING, ADDING, Action.TERMINATE),
        (TERMINAL, SERVED, Action.TEARDOWN),
        (TERMINAL, NONE, Action.NONE),
        (RUNNING, NONE, Action.SETUP),
        (RUNNING, ADDING, Action.REBUILD),  # crashed during ADD: outcome unknown
        (RUNNING, ORPHAN, Action.REBUILD),
        (RUNNING, NETNS_GONE, Action.REBUILD),
        (RUNNING, READY_UNSERVED, Action.ADOPT),  # after a restart
        (RUNNING, SERVED, Action.NONE),
    ],
)
def test_decide(pod: PodInfo | None, sandbox: SandboxView, action: Action) -> None:
    assert decide(pod, sandbox) is action


def test_container_ports_include_sidecars_and_dedupe() -> None:
    spec = {
        "containers": [
            {
                "name": "a",
                "ports": [{"containerPort": 80}, {"containerPort": 81, "protocol": "UDP"}],
            },
            {"name": "b", "ports": [{"name": "serve-80-tcp", "containerPort": 80}]},
            {"name": "c"},
        ],
        "initContainers": [
            {"name": "init", "ports": [{"containerPort": 9}]},  # runs to completion: not served
            {"name": "side", "restartPolicy": "Always", "ports": [{"containerPort": 7}]},
        ],
    }
    assert container_ports(spec) == (7, 80, 81)


def test_pod_info_reads_metadata_spec_and_phase() -> None:
    pod = {
        "metadata": {
            "uid": "u9",
            "namespace": "ns",
            "name": "web",
            "generation": 3,
            "deletionTimestamp": "2030-01-01T00:00:00Z",
        },
        "spec": {"hostNetwork": True, "containers": [{"ports": [{"containerPort": 8080}]}]},
        "status": {"phase": "Failed"},
    }
    got = pod_info(pod)
    assert got == PodInfo(
        uid="u9",
        namespace="ns",
        name="web",
        ports=(8080,),
        deleting=True,
        terminal=True,
        host_network=True,
        generation=3,
    )
