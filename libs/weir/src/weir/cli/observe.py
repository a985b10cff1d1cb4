"""`weir observe`: live policy verdicts from every node (NATS subjects weir.flows.<node>).

Each verdict arrives named by the node-loader that saw it: the pods on both ends, the policy
and rule behind the cookie. Filters narrow the stream; `-o json` prints one object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time
from typing import Any

from weir import catalog
from weir.cli import context
from weir.codec import Codec, CodecError, to_builtins
from weir.models import Flow

PROTOCOLS = {
    socket.IPPROTO_TCP: "TCP",
    socket.IPPROTO_UDP: "UDP",
    132: "SCTP",
    socket.IPPROTO_ICMP: "ICMP",
}


def register(commands: Any) -> None:
    p = commands.add_parser("observe", help="live policy verdicts (allowed and denied flows)")
    p.add_argument("--node", default="", help="only this node's verdicts")
    p.add_argument("--verdict", choices=("allow", "deny"), help="only allowed or only denied")
    p.add_argument("--pod", default="", help="NS/POD on either end")
    p.add_argument("--policy", default="", help="text the naming policy must contain")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    p.add_argument("--timeout", type=float, default=0.0, help="stop after seconds (0: never)")
    p.add_argument(
        "--nats-url",
        default=None,
        help="NATS URL (default: $WEIR_NATS_URL, else the local dev cluster's)",
    )
    p.set_defaults(func=lambda a: asyncio.run(run(a)))


def matches(flow: Flow, args: argparse.Namespace) -> bool:
    if args.verdict and flow.verdict != args.verdict:
        return False
    if args.pod and args.pod not in (flow.local_pod, flow.remote_pod):
        return False
    return not (args.policy and args.policy not in flow.policy)


def render(flow: Flow) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(flow.time_ns / 1e9))
    when += f".{flow.time_ns // 1_000_000 % 1000:03d}"
    proto = PROTOCOLS.get(flow.protocol, str(flow.protocol))
    local = f"{flow.local_pod} ({flow.local_identity})"
    remote = (flow.remote_pod or "") + f" ({flow.remote_identity})"
    src_end, dst_end = (remote, local) if flow.direction == "ingress" else (local, remote)
    src = f"{src_end} {flow.src_ip}:{flow.src_port}"
    dst = f"{dst_end} {flow.dst_ip}:{flow.dst_port}"
    verdict = "ALLOWED" if flow.verdict == "allow" else "DENIED "
    why = flow.policy or flow.reason
    return f"{when} {flow.node:<10} {verdict} {flow.direction:<7} {src} -> {dst} {proto}  {why}"


async def run(args: argparse.Namespace) -> int:
    nc = await context.connect_nats(context.nats_url(args.nats_url))
    codec = Codec(catalog.FLOWS_SCHEMA)
    done = asyncio.Event()
    shown = 0

    async def on_flow(msg: Any) -> None:
        nonlocal shown
        try:
            flow = codec.decode(msg.data)
        except CodecError as e:
            print(f"weir observe: skipping an undecodable verdict: {e}", file=sys.stderr)
            return
        if done.is_set() or not matches(flow, args):
            return
        line = json.dumps(to_builtins(flow)) if args.output == "json" else render(flow)
        print(line, flush=True)
        shown += 1
        if args.count and shown >= args.count:
            done.set()

    subject = catalog.flows_subject(args.node) if args.node else catalog.flows_subject("*")
    await nc.subscribe(subject, cb=on_flow)
    try:
        if args.timeout:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.timeout)
        else:
            await done.wait()
    finally:
        await nc.close()
    return 0
