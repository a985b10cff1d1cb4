"""Where the `weir` CLI finds a local dev cluster: `$WEIR_STATE_DIR`, else `.weir/dev` under
the repository root (the checkout this package is installed from, in development)."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "libs" / "weir").is_dir():
            return parent
    return Path.cwd()


def state_dir() -> Path:
    env = os.environ.get("WEIR_STATE_DIR")
    return Path(env).resolve() if env else repo_root() / ".weir" / "dev"


def local_nats_url() -> str:
    try:
        data = json.loads((state_dir() / "cluster.json").read_text())
        return str(data["nats_url"])
    except (OSError, ValueError, KeyError):
        return DEFAULT_NATS_URL
