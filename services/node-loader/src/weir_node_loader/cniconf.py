"""The node's CNI network configuration file, written atomically and only when it changes.

A container runtime (the local kubelet here) reads `<cni_conf_dir>/05-weir.conflist` at any
moment, so the file is written to a temporary name the runtime ignores (not *.conf*, dot-hidden),
flushed, and renamed over the old one: a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from weir.cni_config import CONFLIST_NAME, PluginConfig, conflist


def render(cfg: PluginConfig) -> bytes:
    return (json.dumps(conflist(cfg), indent=2) + "\n").encode()


def write(conf_dir: Path, content: bytes) -> bool:
    """Make `<conf_dir>/05-weir.conflist` hold `content`; True when it was (re)written."""
    path = conf_dir / CONFLIST_NAME
    try:
        if path.read_bytes() == content:
            return False
    except FileNotFoundError:
        pass
    conf_dir.mkdir(parents=True, exist_ok=True)
    tmp = conf_dir / f".{CONFLIST_NAME}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(conf_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return True
