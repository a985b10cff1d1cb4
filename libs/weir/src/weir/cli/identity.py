"""`weir identity list`: the numeric identities, what each stands for, and how much uses it.

Reads KV weir-identities (the `id.<n>` keys: each number's label set) and KV weir-ipcache (to
count the entries that point at each identity), decoded with the catalogue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from weir import catalog
from weir.bus import CaughtUp, KvBucket
from weir.cli import context
from weir.codec import Codec, CodecError
from weir.models import Identity, IdentityLabels, IPCacheEntry


def register(commands: Any) -> None:
    p = commands.add_parser("identity", help="security identities (numbers for label sets)")
    sub = p.add_subparsers(dest="identity_command", metavar="SUBCOMMAND", required=True)
    ls = sub.add_parser("list", help="every identity: id, kind, labels, ipcache entries")
    ls.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ls.add_argument(
        "--nats-url",
        default=None,
        help="NATS URL (default: $WEIR_NATS_URL, else the local dev cluster's)",
    )
    ls.set_defaults(func=lambda a: asyncio.run(_list(a)))


def kind_of(labels: IdentityLabels) -> str:
    if labels.reserved:
        return "reserved"
    if labels.cidr:
        return "cidr"
    return "pod"


def labels_json(labels: IdentityLabels) -> dict[str, Any]:
    kind = kind_of(labels)
    if kind == "reserved":
        return {"reserved": labels.reserved}
    if kind == "cidr":
        return {"cidr": labels.cidr}
    return {
        "namespace": labels.namespace,
        "pod_labels": dict(labels.pod_labels),
        "namespace_labels": dict(labels.namespace_labels),
    }


def labels_text(labels: IdentityLabels) -> str:
    kind = kind_of(labels)
    if kind == "reserved":
        return f"reserved:{labels.reserved}"
    if kind == "cidr":
        return f"cidr:{labels.cidr}"
    pod = ",".join(f"{k}={v}" for k, v in sorted(labels.pod_labels.items())) or "-"
    ns = ",".join(f"{k}={v}" for k, v in sorted(labels.namespace_labels.items())) or "-"
    return f"namespace={labels.namespace} pod:{pod} namespace:{ns}"


async def _values(nc: Any, bucket: str, pattern: str = ">") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    async for item in KvBucket(nc.jetstream(), bucket).watch(pattern):
        if isinstance(item, CaughtUp):
            break
        if item.value is not None:
            out[item.key] = item.value
    return out


async def _list(args: argparse.Namespace) -> int:
    nc = await context.connect_nats(context.nats_url(args.nats_url))
    try:
        ids = await _values(nc, catalog.IDENTITIES.name, "id.>")
        entries = await _values(nc, catalog.IPCACHE.name)
    finally:
        await nc.close()

    id_codec = Codec(catalog.IDENTITIES_SCHEMA)
    ip_codec = Codec(catalog.IPCACHE_SCHEMA)
    uses: dict[int, int] = {}
    for key, data in entries.items():
        try:
            entry = ip_codec.decode(data)
        except CodecError as e:
            print(f"weir: skipping {catalog.IPCACHE.name} {key}: {e}", file=sys.stderr)
            continue
        if isinstance(entry, IPCacheEntry):
            uses[entry.identity] = uses.get(entry.identity, 0) + 1
    rows: list[Identity] = []
    for key, data in ids.items():
        try:
            identity = id_codec.decode(data)
        except CodecError as e:
            print(f"weir: skipping {catalog.IDENTITIES.name} {key}: {e}", file=sys.stderr)
            continue
        if isinstance(identity, Identity):
            rows.append(identity)
    rows.sort(key=lambda i: i.id)

    if args.output == "json":
        out = [
            {
                "id": i.id,
                "kind": kind_of(i.labels),
                "labels": labels_json(i.labels),
                "ipcache_entries": uses.get(i.id, 0),
            }
            for i in rows
        ]
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'ID':<10} {'KIND':<9} {'IPCACHE':>7}  LABELS")
    for i in rows:
        print(f"{i.id:<10} {kind_of(i.labels):<9} {uses.get(i.id, 0):>7}  {labels_text(i.labels)}")
    return 0
