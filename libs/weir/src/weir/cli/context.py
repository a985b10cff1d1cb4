"""Where the `weir` CLI finds a local dev cluster: `$WEIR_STATE_DIR`, else `.weir/dev` under
the repository root (the checkout this package is installed from, in development)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import nats

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
CONNECT_DEADLINE = 5.0  # seconds for a CLI command to reach NATS


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


def nats_url(flag: str | None = None) -> str:
    """--nats-url, else $WEIR_NATS_URL, else the local dev cluster's."""
    return flag or os.environ.get("WEIR_NATS_URL") or local_nats_url()


async def connect_nats(url: str) -> Any:
    """A NATS connection for a CLI command, or SystemExit with why. nats-py retries a refused
    first connect forever whatever its options say, so the whole attempt has a deadline."""

    async def quiet(_error: Exception) -> None:  # the reason is in the SystemExit
        return None

    try:
        async with asyncio.timeout(CONNECT_DEADLINE):
            return await nats.connect(url, connect_timeout=2, allow_reconnect=False, error_cb=quiet)
    except (TimeoutError, OSError, nats.errors.Error) as e:
        why = str(e) or "no answer"
        raise SystemExit(f"weir: cannot reach NATS at {url}: {why}") from None
