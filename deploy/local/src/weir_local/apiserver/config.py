"""Settings of one API server instance (the CLI flags, plus knobs tests turn)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .resources import ResourceInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    # None keeps everything in memory (unit tests); otherwise SQLite lives here.
    state_dir: Path | None = None
    service_cluster_ip_range: str = "10.96.0.0/12"
    service_node_port_range: str = "30000-32767"
    watch_history: int = 50_000
    bookmark_interval: float = 5.0
    # Events a watcher may have queued before it is closed as too slow.
    watch_queue_limit: int = 10_000
    event_ttl: float = 3600.0
    # Upstream --min-request-timeout: a watch without timeoutSeconds ends after a random
    # duration in [min, 2*min), so clients re-watch and load spreads.
    min_watch_timeout: float = 1800.0
    # Kinds served in addition to the built-in ones (Weir's own kinds).
    extra_resources: tuple[ResourceInfo, ...] = ()
    # How long the namespace controller waits before re-checking a namespace still emptying.
    namespace_resync: float = 1.0
    # Seconds between gc.freeze() calls (see ApiServerState._freeze_periodically).
    gc_freeze_interval: float = 10.0
