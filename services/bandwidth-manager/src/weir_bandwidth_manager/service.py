"""The bandwidth-manager process.

Its work is not built yet: it connects, serves health and says so.
"""

from __future__ import annotations

from weir import runtime
from weir.config import ServiceConfig

CAPABILITY = "egress bandwidth limits arrive with the bandwidth issue"


def main() -> None:
    raise SystemExit(
        runtime.run(
            "bandwidth-manager",
            ServiceConfig,
            runtime.idle(CAPABILITY),
            description="Weir bandwidth-manager (egress-bandwidth annotations to shaping state)",
        )
    )
