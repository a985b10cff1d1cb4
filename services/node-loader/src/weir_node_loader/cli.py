"""`weir bpf`: what node-loader's pinned maps hold, read straight from bpffs.

Registered in the `weir.cli` entry-point group by the node-loader package. It opens the pins
read-only with bpf(2) (checking each against maps.py, like node-loader does) and decodes them
with maps.py: no BCC, no compile, no NATS, so it works while node-loader is down.

Defaults come from the local dev cluster (`<state dir>/cluster.json`: its "bpf_root" and
"nodes"), else /sys/fs/bpf/weir and whichever node directories are there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from weir.cli import context

from weir_node_loader import bpfsys, maps, program
from weir_node_loader.endpoint_maps import EndpointMaps
from weir_node_loader.pins import PinMismatch

DEFAULT_BPF_ROOT = Path("/sys/fs/bpf/weir")


def register(commands: Any) -> None:
    p = commands.add_parser("bpf", help="read node-loader's pinned BPF maps (no BCC needed)")
    sub = p.add_subparsers(dest="bpf_command", metavar="SUBCOMMAND", required=True)
    endpoint = sub.add_parser("endpoint", help="pod endpoints in the datapath")
    esub = endpoint.add_subparsers(dest="endpoint_command", metavar="SUBCOMMAND", required=True)
    ls = esub.add_parser(
        "list",
        help="every endpoint with its counters",
        description="Every endpoint in the pinned maps. IN counts packets entering the pod "
        "(tc egress of its host veth), OUT packets leaving it (tc ingress).",
    )
    _target_flags(ls)
    ls.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ls.set_defaults(func=_endpoint_list)
    prog = sub.add_parser(
        "program", help="print the BPF source node-loader compiles for a node, with its flags"
    )
    _target_flags(prog)
    prog.add_argument("--bpf-dir", default="", help="bpf/ sources (default: this tree's)")
    prog.set_defaults(func=_program)


def _target_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", default=None, help="node name (default: every node found)")
    p.add_argument(
        "--bpf-root",
        default=None,
        help="bpffs root of the pins (default: the dev cluster's, else /sys/fs/bpf/weir)",
    )


def _cluster() -> dict[str, Any]:
    try:
        data = json.loads((context.state_dir() / "cluster.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def targets(bpf_root: str | None, node: str | None) -> tuple[Path, list[str]]:
    """The bpf root and the nodes to read."""
    cluster = _cluster()
    root = Path(bpf_root or cluster.get("bpf_root") or DEFAULT_BPF_ROOT)
    if node:
        return root, [node]
    listed = [n for n in cluster.get("nodes") or [] if isinstance(n, str)]
    if listed and not bpf_root and cluster.get("bpf_root"):
        return root, [n for n in listed if (root / n).is_dir()]
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return root, found


def rows(root: Path, node: str) -> list[dict[str, Any]]:
    """One row per endpoint of `node`, as `-o json` prints them."""
    with EndpointMaps.open(root / node, readonly=True) as m:
        realized = m.realized(node)
        counters = m.counters()
    out = []
    for ifindex, r in sorted(realized.items()):
        c = counters.get(ifindex, maps.Counters())
        rec = r.record
        out.append(
            {
                "node": node,
                "endpoint": rec.container_id if rec else "",
                "pod": f"{rec.pod_namespace}/{rec.pod_name}" if rec else "",
                "ip": rec.ip if rec else "",
                "mac": rec.mac if rec else "",
                "host_ifindex": ifindex,
                "host_ifname": rec.host_ifname if rec else "",
                "host_mac": rec.host_mac if rec else "",
                "complete": r.complete,
                "packets_in": c.to_pod.packets,
                "bytes_in": c.to_pod.bytes,
                "packets_out": c.from_pod.packets,
                "bytes_out": c.from_pod.bytes,
            }
        )
    return out


def _endpoint_list(args: argparse.Namespace) -> int:
    root, nodes = targets(args.bpf_root, args.node)
    if not nodes:
        print(f"weir: no node directories under {root}", file=sys.stderr)
        return 1
    found: list[dict[str, Any]] = []
    for node in nodes:
        try:
            found += rows(root, node)
        except FileNotFoundError:
            print(f"weir: no pinned maps for node {node} under {root / node}", file=sys.stderr)
            return 1
        except (PinMismatch, bpfsys.BpfError) as e:
            print(f"weir: {e}", file=sys.stderr)
            return 1
    if args.output == "json":
        print(json.dumps(found, indent=2))
        return 0
    headers = (
        "NODE", "ENDPOINT", "POD", "IP", "IFINDEX", "IFNAME",
        "PKTS IN", "BYTES IN", "PKTS OUT", "BYTES OUT",
    )  # fmt: skip
    table = [
        (
            r["node"],
            r["endpoint"][:12] or "?",
            r["pod"] or "? (half-written)",
            r["ip"],
            str(r["host_ifindex"]),
            r["host_ifname"],
            str(r["packets_in"]),
            str(r["bytes_in"]),
            str(r["packets_out"]),
            str(r["bytes_out"]),
        )
        for r in found
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    for line in (headers, *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _program(args: argparse.Namespace) -> int:
    root, nodes = targets(args.bpf_root, args.node)
    node = nodes[0] if nodes else "NODE"
    try:
        bpf_dir = program.find_bpf_dir(args.bpf_dir)
        flags = program.cflags(root / node)
        text = program.bundle(bpf_dir)
    except program.ProgramError as e:
        print(f"weir: {e}", file=sys.stderr)
        return 1
    print(f"// {bpf_dir / program.PROGRAM_FILE} for node {node}")
    print(f"// cflags: {' '.join(flags)}")
    print(f"// sha256: {program.source_hash(text)}")
    sys.stdout.write(text)
    return 0
