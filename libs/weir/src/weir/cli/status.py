"""`weir status`: is every stage of the dataplane caught up with the Kubernetes API?

It asks each stage in the order changes flow (catalog.PIPELINE, then every node's
catalog.NODE_PIPELINE) through the convergence barrier: a stage answers once it has applied
everything that was pending when asked. Passed in order, the barriers cover every API change
made before the command started. `--wait-converged` keeps asking until all say yes or the
timeout passes (exit 0 converged, 1 not).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import nats
import nats.errors

from weir import catalog
from weir.bus import CaughtUp, KvBucket
from weir.cli import context
from weir.codec import Codec, CodecError
from weir.models import BarrierReply, BarrierRequest

CODEC = Codec(catalog.BARRIER_SCHEMA)


def register(commands: Any) -> None:
    p = commands.add_parser("status", help="is the dataplane caught up with the API?")
    p.add_argument(
        "--wait-converged",
        action="store_true",
        help="wait until every stage has applied every earlier API change",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument(
        "--nats-url",
        default=None,
        help="NATS URL (default: $WEIR_NATS_URL, else the local dev cluster's)",
    )
    p.set_defaults(func=lambda a: asyncio.run(run(a)))


async def _nodes(nc: Any) -> list[str]:
    """The nodes the dataplane knows, from weir-k8s (so the list is the watcher's, not a guess)."""
    nodes = []
    async for item in KvBucket(nc.jetstream(), catalog.K8S.name).watch("node.>"):
        if isinstance(item, CaughtUp):
            break
        nodes.append(item.key.split(".", 1)[1])
    return sorted(nodes)


async def _ask(nc: Any, service: str, node: str, deadline: float, wait: bool) -> BarrierReply:
    """One stage's answer; with `wait`, ask again until it converges or time runs out."""
    subject = catalog.barrier_subject(service, node)
    while True:
        remaining = deadline - time.monotonic()
        per_request = max(0.0, min(remaining, 10.0)) if wait else 0.0
        try:
            msg = await nc.request(
                subject,
                CODEC.encode(BarrierRequest(wait_seconds=per_request)),
                timeout=per_request + 2.0,
            )
            reply = CODEC.decode(msg.data)
            if not isinstance(reply, BarrierReply):
                raise CodecError("not a barrier reply")
        except nats.errors.NoRespondersError:
            reply = BarrierReply(
                service=service,
                node=node,
                converged=False,
                detail="not running (no one answers its barrier)",
            )
        except (nats.errors.TimeoutError, CodecError) as e:
            reply = BarrierReply(
                service=service, node=node, converged=False, detail=f"no usable answer: {e}"
            )
        if reply.converged or not wait or time.monotonic() >= deadline:
            return reply
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> int:
    url = context.nats_url(args.nats_url)
    started = time.monotonic()
    deadline = started + args.timeout
    nc = await context.connect_nats(url)
    try:
        stages = [(s, "") for s in catalog.PIPELINE]
        stages += [(s, n) for n in await _nodes(nc) for s in catalog.NODE_PIPELINE]
        converged = True
        for service, node in stages:
            reply = await _ask(nc, service, node, deadline, args.wait_converged)
            name = f"{service}/{node}" if node else service
            mark = "converged" if reply.converged else "NOT converged"
            print(f"{name:<28}{mark:<15}{reply.detail}")
            converged = converged and reply.converged
            if args.wait_converged and not converged:
                break  # later stages cannot be caught up with what this one has not passed on
    finally:
        await nc.close()
    if args.wait_converged:
        print(
            f"{'converged' if converged else 'NOT converged'} in {time.monotonic() - started:.2f}s"
        )
    return 0 if converged else 1
