"""`weir bpf`: what node-loader's pinned maps hold, read straight from bpffs.

Registered in the `weir.cli` entry-point group by the node-loader package. It opens the pins
read-only with bpf(2) (checking each against maps.py, like node-loader does) and decodes them
with maps.py: no BCC and no compile, so it works while node-loader is down.

- `endpoint list`: endpoints and their counters;
- `policy get NS/POD`: an endpoint's policy as the datapath will apply it — per direction
  enforced or not, and each entry: peer identity (with its labels from KV weir-identities),
  protocol, port range, verdict, and the policy behind the cookie (from KV weir-policy). Names
  need NATS; without it the numbers are printed alone;
- `ct list`: conntrack entries (tuple, direction, state, age, idle);
- `ipcache list`: prefixes and their identities;
- `program`: the exact source and flags compiled.

Defaults come from the local dev cluster (`<state dir>/cluster.json`: its "bpf_root" and
"nodes"), else /sys/fs/bpf/weir and whichever node directories are there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from weir.cli import context

from weir_node_loader import bpfsys, conntrack, maps, policy, program
from weir_node_loader.datapath_maps import DatapathMaps
from weir_node_loader.endpoint_maps import EndpointMaps
from weir_node_loader.maps import Direction, IPCacheFlag
from weir_node_loader.pins import PinMismatch

DEFAULT_BPF_ROOT = Path("/sys/fs/bpf/weir")


def register(commands: Any) -> None:
    p = commands.add_parser("bpf", help="read node-loader's pinned BPF maps (no BCC needed)")
    sub = p.add_subparsers(dest="bpf_command", metavar="SUBCOMMAND", required=True)
    _list_command(
        _group(sub, "endpoint", "pod endpoints in the datapath"),
        _endpoint_list,
        help="every endpoint with its counters",
        description="Every endpoint in the pinned maps. IN counts packets entering the pod "
        "(tc egress of its host veth), OUT packets leaving it (tc ingress).",
    )
    get = _group(sub, "policy", "an endpoint's policy as the datapath applies it").add_parser(
        "get",
        help="one pod's policy entries, named",
        description="The policy the maps hold for one pod: each direction, enforced or not, and "
        "its entries with peer identities (labels from KV weir-identities) and the policy behind "
        "each cookie (KV weir-policy). Without NATS, numbers only.",
    )
    get.add_argument("pod", metavar="NS/POD")
    _target_flags(get)
    get.add_argument("--nats-url", default=None, help="NATS URL (default: $WEIR_NATS_URL, else "
                     "the dev cluster's); names only")  # fmt: skip
    get.add_argument("--no-names", action="store_true", help="do not ask NATS for names")
    get.add_argument("-o", "--output", choices=("table", "json"), default="table")
    get.set_defaults(func=_policy_get)
    _list_command(
        _group(sub, "ct", "conntrack entries"),
        _ct_list,
        help="every tracked flow: tuple, direction, state, age",
    )
    _list_command(
        _group(sub, "ipcache", "the node's ipcache: prefix -> identity"),
        _ipcache_list,
        help="every prefix with its identity and kind",
    )
    prog = sub.add_parser(
        "program", help="print the BPF source node-loader compiles for a node, with its flags"
    )
    _target_flags(prog)
    prog.add_argument("--bpf-dir", default="", help="bpf/ sources (default: this tree's)")
    prog.set_defaults(func=_program)


def _group(sub: Any, name: str, help: str) -> Any:
    """`weir bpf NAME`, a command whose subcommands are added to what this returns."""
    parser = sub.add_parser(name, help=help)
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def _list_command(group: Any, func: Any, **texts: str) -> None:
    """A `list` subcommand: which node and pins, table or JSON."""
    ls = group.add_parser("list", **texts)
    _target_flags(ls)
    ls.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ls.set_defaults(func=func)


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


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    for line in (headers, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _each_node(
    args: argparse.Namespace, read: Callable[[Path, str], list[dict[str, Any]]]
) -> list[dict[str, Any]] | None:
    """`read(root, node)` for every target node; None (and a message) on failure."""
    root, nodes = targets(args.bpf_root, args.node)
    if not nodes:
        print(f"weir: no node directories under {root}", file=sys.stderr)
        return None
    found: list[dict[str, Any]] = []
    for node in nodes:
        try:
            found += read(root, node)
        except FileNotFoundError:
            print(f"weir: no pinned maps for node {node} under {root / node}", file=sys.stderr)
            return None
        except (PinMismatch, bpfsys.BpfError) as e:
            print(f"weir: {e}", file=sys.stderr)
            return None
    return found


# --- ipcache ------------------------------------------------------------------------------------

KIND_NAMES = {int(k): k.name.lower() for k in maps.IPCacheKind}


def ipcache_rows(root: Path, node: str) -> list[dict[str, Any]]:
    with DatapathMaps.open(root / node, readonly=True) as dp:
        tables = dp.ipcache()
    return [
        {
            "node": node,
            "prefix": prefix,
            "identity": v.identity,
            "kind": KIND_NAMES.get(v.kind, str(v.kind)),
            "cidr_table": prefix in tables.cidr,
            "local": bool(v.flags & IPCacheFlag.LOCAL),
        }
        for prefix, v in sorted(
            tables.main.items(), key=lambda kv: (int(kv[0].split("/")[1]), kv[0])
        )
    ]


def _ipcache_list(args: argparse.Namespace) -> int:
    found = _each_node(args, ipcache_rows)
    if found is None:
        return 1
    if args.output == "json":
        print(json.dumps(found, indent=2))
        return 0
    _table(
        ("NODE", "PREFIX", "IDENTITY", "KIND", "NOTE"),
        [
            (
                r["node"],
                r["prefix"],
                str(r["identity"]),
                r["kind"],
                "this node" if r["local"] else ("ipBlock" if r["cidr_table"] else ""),
            )
            for r in found
        ],
    )
    return 0


# --- conntrack ----------------------------------------------------------------------------------


def ct_rows(root: Path, node: str) -> list[dict[str, Any]]:
    with DatapathMaps.open(root / node, readonly=True) as dp:
        rows = dp.ct_rows()
    now = time.monotonic_ns()
    out = []
    for r in sorted(rows, key=lambda r: (r.saddr, r.daddr, r.sport, r.dport, r.protocol)):
        out.append(
            {
                "node": node,
                "protocol": conntrack.protocol_name(r.protocol),
                "src": f"{r.saddr}:{r.sport}",
                "dst": f"{r.daddr}:{r.dport}",
                "direction": "egress" if r.direction == Direction.FROM_POD else "ingress",
                "state": conntrack.state_of(r.protocol, r.flags).value,
                "age_seconds": round((now - r.created_ns) / 1e9, 1),
                "idle_seconds": round((now - r.last_seen_ns) / 1e9, 1),
                "remote_identity": r.remote_identity,
                "cookie": r.cookie,
            }
        )
    return out


def _ct_list(args: argparse.Namespace) -> int:
    found = _each_node(args, ct_rows)
    if found is None:
        return 1
    if args.output == "json":
        print(json.dumps(found, indent=2))
        return 0
    _table(
        ("NODE", "PROTO", "SOURCE", "DESTINATION", "OPENED", "STATE", "AGE", "IDLE", "REMOTE ID"),
        [
            (
                r["node"],
                r["protocol"],
                r["src"],
                r["dst"],
                r["direction"],
                r["state"],
                f"{r['age_seconds']:g}s",
                f"{r['idle_seconds']:g}s",
                str(r["remote_identity"]),
            )
            for r in found
        ],
    )
    return 0


# --- policy -------------------------------------------------------------------------------------

PROTOCOLS = {0: "any", 1: "ICMP", 6: "TCP", 17: "UDP", 132: "SCTP"}
VERDICTS = {int(maps.Verdict.ALLOW): "allow", int(maps.Verdict.DENY): "deny"}
RESERVED = {1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init", 6: "remote-node",
            7: "kube-apiserver", 8: "ingress"}  # fmt: skip


def _find_endpoint(root: Path, node: str, pod: str) -> int | None:
    namespace, _, name = pod.partition("/")
    with EndpointMaps.open(root / node, readonly=True) as m:
        for ifindex, held in m.realized(node).items():
            rec = held.record
            if rec is not None and (rec.pod_namespace, rec.pod_name) == (namespace, name):
                return ifindex
    return None


async def _names(
    url: str, node: str, pod: str, identities: set[int]
) -> tuple[dict[int, str], dict[int, str]]:
    """Labels of `identities` (KV weir-identities) and cookie texts (KV weir-policy)."""
    from prometheus_client import CollectorRegistry
    from weir import catalog
    from weir.bus import BusMetrics, KvBucket, TypedKv
    from weir.models import EndpointPolicy, Identity, IdentityLabels

    def label_text(labels: IdentityLabels) -> str:
        if labels.reserved:
            return f"reserved:{labels.reserved}"
        if labels.cidr:
            return f"cidr:{labels.cidr}"
        pairs = ",".join(f"{k}={v}" for k, v in sorted(labels.pod_labels.items()))
        return f"ns={labels.namespace}" + (f" {pairs}" if pairs else "")

    nc = await context.connect_nats(url)
    try:
        js = nc.jetstream()
        metrics = BusMetrics(CollectorRegistry())
        ids = TypedKv(KvBucket(js, catalog.IDENTITIES.name), catalog.IDENTITIES, metrics)
        pols = TypedKv(KvBucket(js, catalog.POLICY.name), catalog.POLICY, metrics)
        labels: dict[int, str] = {}
        for identity in sorted(identities):
            try:
                found = await ids.get(catalog.identity_id_key(identity))
            except Exception:
                found = None
            if isinstance(found, Identity):
                labels[identity] = label_text(found.labels)
        namespace, _, name = pod.partition("/")
        try:
            held = await pols.get(catalog.policy_key(node, namespace, name))
        except Exception:
            held = None
        cookies = dict(held.cookies) if isinstance(held, EndpointPolicy) else {}
        return labels, cookies
    finally:
        await nc.close()


def policy_view(root: Path, node: str, pod: str) -> dict[str, Any] | None:
    """The pod's policy as the maps hold it (numbers only), or None if it is not on `node`."""
    ifindex = _find_endpoint(root, node, pod)
    if ifindex is None:
        return None
    with DatapathMaps.open(root / node, readonly=True) as dp:
        held = dp.policy_of(ifindex)
    view: dict[str, Any] = {
        "node": node,
        "pod": pod,
        "ifindex": ifindex,
        "policy": held is not None,
    }
    if held is None or held.config is None:
        view["policy"] = False
        return view
    cfg = held.config
    view.update(identity=cfg.identity, slot=held.slot,
                ipblock_matches_pods=bool(cfg.flags & maps.EpPolicyFlag.IPBLOCK_PODS))  # fmt: skip
    described = policy.describe(held.rows)
    for direction, flag, cookie in (
        (Direction.TO_POD, maps.EpPolicyFlag.INGRESS_ENFORCED, cfg.ingress_cookie),
        (Direction.FROM_POD, maps.EpPolicyFlag.EGRESS_ENFORCED, cfg.egress_cookie),
    ):
        name = "ingress" if direction == Direction.TO_POD else "egress"
        view[name] = {
            "enforced": bool(cfg.flags & flag),
            "default_cookie": cookie,
            "entries": [
                {
                    "identity": identity,
                    "protocol": PROTOCOLS.get(protocol, str(protocol)),
                    "ports": "any" if rng is None else (
                        str(rng[0]) if rng[0] == rng[1] else f"{rng[0]}-{rng[1]}"
                    ),
                    "verdict": VERDICTS.get(value.verdict, str(value.verdict)),
                    "cookie": value.cookie,
                }
                for d, identity, protocol, rng, value in described
                if d == direction
            ],
        }  # fmt: skip
    return view


def _policy_get(args: argparse.Namespace) -> int:
    if "/" not in args.pod:
        print("weir: give the pod as NS/POD", file=sys.stderr)
        return 2
    root, nodes = targets(args.bpf_root, args.node)
    view = None
    try:
        for node in nodes:
            view = policy_view(root, node, args.pod)
            if view is not None:
                break
    except FileNotFoundError as e:
        print(f"weir: no pinned maps: {e}", file=sys.stderr)
        return 1
    except (PinMismatch, bpfsys.BpfError) as e:
        print(f"weir: {e}", file=sys.stderr)
        return 1
    if view is None:
        print(f"weir: no endpoint {args.pod} on {', '.join(nodes) or 'any node'}", file=sys.stderr)
        return 1
    labels: dict[int, str] = {}
    cookies: dict[int, str] = {}
    if view["policy"] and not args.no_names:
        url = context.nats_url(args.nats_url)
        wanted = {e["identity"] for d in ("ingress", "egress") for e in view[d]["entries"]}
        try:
            labels, cookies = asyncio.run(_names(url, view["node"], args.pod, wanted))
        except Exception as e:  # names are a convenience: print the numbers anyway
            print(f"weir: no names (NATS at {url}: {e})", file=sys.stderr)
    for direction in ("ingress", "egress"):
        if not view["policy"]:
            break
        d = view[direction]
        d["default_policy"] = cookies.get(d["default_cookie"], "")
        for entry in d["entries"]:
            identity = entry["identity"]
            entry["peer"] = (
                "any" if identity == 0 else RESERVED.get(identity, labels.get(identity, ""))
            )
            entry["policy"] = cookies.get(entry["cookie"], "")
    if args.output == "json":
        print(json.dumps(view, indent=2))
        return 0
    print(f"{view['pod']} on {view['node']} (host veth ifindex {view['ifindex']})")
    if not view["policy"]:
        print("  no policy in the maps: not policed")
        return 0
    print(f"  identity {view['identity']}, slot {view['slot']}, ipBlock matches pods: "
          f"{'yes' if view['ipblock_matches_pods'] else 'no'}")  # fmt: skip
    for direction in ("ingress", "egress"):
        d = view[direction]
        if not d["enforced"]:
            print(f"  {direction}: not enforced (everything allowed)")
            continue
        isolating = f" by {d['default_policy']}" if d["default_policy"] else ""
        print(f"  {direction}: enforced{isolating} (cookie {d['default_cookie']}); "
              f"{len(d['entries'])} entries")  # fmt: skip
        if d["entries"]:
            rows = [
                (
                    f"    {e['identity']}",
                    str(e["peer"]),
                    str(e["protocol"]),
                    str(e["ports"]),
                    str(e["verdict"]),
                    str(e["policy"] or f"cookie {e['cookie']}"),
                )
                for e in d["entries"]
            ]
            _table(("    PEER ID", "PEER", "PROTO", "PORTS", "VERDICT", "POLICY"), rows)
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
