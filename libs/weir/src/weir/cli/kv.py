"""`weir kv`: read Weir's desired state from JetStream KV, decoded with the catalogue."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from prometheus_client import CollectorRegistry

from weir import catalog
from weir.bus import BusMetrics, CaughtUp, KvBucket, TypedKv
from weir.cli import context
from weir.codec import CodecError, to_builtins


def register(commands: Any) -> None:
    p = commands.add_parser("kv", help="read KV buckets (desired state)")
    sub = p.add_subparsers(dest="kv_command", metavar="SUBCOMMAND", required=True)
    ls = sub.add_parser("ls", help="list the keys of a bucket")
    ls.add_argument("bucket", choices=[b.name for b in catalog.BUCKETS])
    ls.add_argument("pattern", nargs="?", default=">", help="key pattern, e.g. 'pod.>'")
    ls.set_defaults(func=lambda a: asyncio.run(_ls(a)))
    get = sub.add_parser("get", help="print the decoded value of keys as JSON")
    get.add_argument("bucket", choices=[b.name for b in catalog.BUCKETS])
    get.add_argument("pattern", help="a key, or a pattern such as 'pod.default.>'")
    get.set_defaults(func=lambda a: asyncio.run(_get(a)))
    for parser in (ls, get):
        parser.add_argument(
            "--nats-url",
            default=None,
            help="NATS URL (default: $WEIR_NATS_URL, else the local dev cluster's)",
        )


async def _open(args: argparse.Namespace) -> tuple[Any, TypedKv[Any]]:
    nc = await context.connect_nats(context.nats_url(args.nats_url))
    spec = catalog.bucket_named(args.bucket)
    assert spec is not None
    return nc, TypedKv(KvBucket(nc.jetstream(), spec.name), spec, BusMetrics(CollectorRegistry()))


async def _entries(kv: TypedKv[Any], pattern: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    async for item in kv.raw.watch(pattern):
        if isinstance(item, CaughtUp):
            break
        if item.value is not None:
            out[item.key] = item.value
    return out


async def _ls(args: argparse.Namespace) -> int:
    nc, kv = await _open(args)
    try:
        for key in sorted(await _entries(kv, args.pattern)):
            print(key)
    finally:
        await nc.close()
    return 0


async def _get(args: argparse.Namespace) -> int:
    nc, kv = await _open(args)
    try:
        entries = await _entries(kv, args.pattern)
    finally:
        await nc.close()
    out: dict[str, Any] = {}
    for key in sorted(entries):
        try:
            out[key] = to_builtins(kv.codec.decode(entries[key]))
        except CodecError as e:
            out[key] = {"error": str(e)}
    if not out:
        print(f"weir: no key matches {args.pattern!r} in {args.bucket}", file=sys.stderr)
        return 1
    json.dump(out if len(out) > 1 else next(iter(out.values())), sys.stdout, indent=2)
    print()
    return 0
