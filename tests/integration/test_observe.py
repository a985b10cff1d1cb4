"""`weir observe` against a real nats-server: verdicts published as node-loader publishes them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import nats
import pytest
from weir import catalog
from weir.codec import Codec
from weir.models import Flow, FlowDirection, Verdict

from tests.support.processes import VENV_BIN, NatsServer

pytestmark = pytest.mark.integration


def flow(verdict: Verdict, local: str, policy: str, node: str = "node-1") -> Flow:
    return Flow(
        node=node,
        time_ns=time.time_ns(),
        direction=FlowDirection.INGRESS,
        verdict=verdict,
        reason="policy" if verdict == Verdict.ALLOW else "policy-denied",
        protocol=6,
        src_ip="10.244.1.3",
        dst_ip="10.244.1.2",
        src_port=40000,
        dst_port=80,
        local_pod=local,
        remote_pod="x/b",
        local_identity=300,
        remote_identity=301,
        cookie=7,
        policy=policy,
    )


async def test_filters_and_json_output(nats_server: NatsServer) -> None:
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "weir"),
            "observe",
            "--nats-url",
            nats_server.url,
            "--verdict",
            "deny",
            "--pod",
            "x/a",
            "--count",
            "2",
            "--timeout",
            "20",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    nc = await nats.connect(nats_server.url)
    codec = Codec(catalog.FLOWS_SCHEMA)
    await asyncio.sleep(1.5)  # let the observer subscribe (plain subjects keep no history)
    sent = [
        flow(Verdict.ALLOW, "x/a", "x/allow-b: ingress rule 1"),  # filtered: verdict
        flow(Verdict.DENY, "y/a", "y/deny-all: default deny"),  # filtered: pod
        flow(Verdict.DENY, "x/a", "x/deny-all: default deny"),
        flow(Verdict.DENY, "x/a", "x/deny-all: default deny", node="node-2"),
        flow(Verdict.DENY, "x/a", "x/never-shown"),  # past --count
    ]
    for f in sent:
        await nc.publish(catalog.flows_subject(f.node), codec.encode(f))
    await nc.flush()
    out, err = proc.communicate(timeout=30)
    await nc.close()
    assert proc.returncode == 0, err
    shown = [json.loads(line) for line in out.splitlines()]
    assert [(s["node"], s["policy"]) for s in shown] == [
        ("node-1", "x/deny-all: default deny"),
        ("node-2", "x/deny-all: default deny"),
    ]
    assert shown[0]["local_pod"] == "x/a" and shown[0]["remote_pod"] == "x/b"


def test_text_output_names_pods_and_policy() -> None:
    from weir.cli.observe import render

    line = render(flow(Verdict.DENY, "x/a", "x/deny-all: default deny"))
    assert "DENIED" in line and "ingress" in line
    assert "x/b (301) 10.244.1.3:40000 -> x/a (300) 10.244.1.2:80 TCP" in line
    assert line.endswith("x/deny-all: default deny")
