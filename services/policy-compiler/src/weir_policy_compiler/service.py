"""The policy-compiler process.

Its work is not built yet: it connects, serves health and says so.
"""

from __future__ import annotations

from weir import runtime
from weir.config import ServiceConfig

CAPABILITY = "NetworkPolicy compilation arrives with the NetworkPolicy issue"


def main() -> None:
    raise SystemExit(
        runtime.run(
            "policy-compiler",
            ServiceConfig,
            runtime.idle(CAPABILITY),
            description="Weir policy-compiler (NetworkPolicy to per-endpoint policy tables)",
        )
    )
