"""The identity-allocator process.

Its work is not built yet: it connects, serves health and says so.
"""

from __future__ import annotations

from weir import runtime
from weir.config import ServiceConfig

CAPABILITY = "numeric identities for label sets arrive with the NetworkPolicy issue"


def main() -> None:
    raise SystemExit(
        runtime.run(
            "identity-allocator",
            ServiceConfig,
            runtime.idle(CAPABILITY),
            description="Weir identity-allocator (labels to numeric identities, ipcache)",
        )
    )
