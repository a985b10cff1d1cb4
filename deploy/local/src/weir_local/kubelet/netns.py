"""The kubelet's pod namespaces: `<prefix>-<pod uid>` under /run/netns (namespace mechanics
themselves are weir.netns)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from weir.netns import RUN_DIR, create, delete, entered, is_netns, path_of, setns

__all__ = [
    "RUN_DIR",
    "create",
    "delete",
    "entered",
    "is_netns",
    "names_with_prefix",
    "path_of",
    "setns",
    "uid_of",
]
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def names_with_prefix(prefix: str, run_dir: Path = RUN_DIR) -> list[str]:
    """Names `<prefix>-<uuid>` under run_dir (another prefix that merely starts with ours,
    like `<prefix>-x-<uuid>`, does not match: the rest must be a whole UID)."""
    try:
        entries = os.listdir(run_dir)
    except FileNotFoundError:
        return []
    start = prefix + "-"
    return sorted(n for n in entries if n.startswith(start) and _UUID.match(n[len(start) :]))


def uid_of(name: str, prefix: str) -> str:
    return name[len(prefix) + 1 :]
