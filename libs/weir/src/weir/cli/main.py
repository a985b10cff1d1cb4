"""The `weir` command line.

Built-in commands live in this package; other installed Weir packages add command groups
through the `weir.cli` entry-point group (the local cluster adds `weir dev`), so a production
image that lacks them simply has fewer commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

from weir.cli import identity, kv, observe, status

log = logging.getLogger("weir.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weir", description="Weir: an eBPF dataplane for Kubernetes"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    kv.register(commands)
    identity.register(commands)
    status.register(commands)
    observe.register(commands)
    for ep in sorted(entry_points(group="weir.cli"), key=lambda e: e.name):
        try:
            ep.load()(commands)
        except Exception as e:  # a broken plugin must not take the other commands down
            print(f"weir: command group {ep.name!r} unavailable: {e}", file=sys.stderr)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
