"""identity-allocator's settings (WEIR_<SETTING>, --<setting>, or the config file)."""

from __future__ import annotations

from dataclasses import dataclass

from weir.config import ConfigError, ServiceConfig, setting
from weir.identity import CLUSTER_MAX, CLUSTER_MIN


@dataclass(frozen=True, kw_only=True)
class AllocatorConfig(ServiceConfig):
    identity_gc_grace_seconds: float = setting(
        300.0, "how long an identity nothing uses stays allocated before it is released"
    )
    cluster_id_max: int = setting(
        65535,
        f"highest number handed to a pod label set ({CLUSTER_MIN}..{CLUSTER_MAX}); 65535 keeps "
        "ids short as in Cilium (65,280 label sets); every replica must use the same value",
    )
    max_concurrent_allocations: int = setting(64, "allocations in flight at once")
    resync_seconds: float = setting(
        60.0, "period of a full pass even without changes (repairs drift in the buckets)"
    )

    def check(self) -> None:
        """Settings that parse but cannot work (ConfigError names the setting)."""
        if self.identity_gc_grace_seconds < 0:
            raise ConfigError("identity_gc_grace_seconds cannot be negative")
        if not CLUSTER_MIN <= self.cluster_id_max <= CLUSTER_MAX:
            raise ConfigError(f"cluster_id_max must be from {CLUSTER_MIN} to {CLUSTER_MAX}")
        if self.max_concurrent_allocations < 1:
            raise ConfigError("max_concurrent_allocations must be at least 1")
        if self.resync_seconds <= 0:
            raise ConfigError("resync_seconds must be positive")
