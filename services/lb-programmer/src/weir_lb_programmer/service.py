"""The lb-programmer process.

Its work is not built yet: it connects, serves health and says so.
"""

from __future__ import annotations

from weir import runtime
from weir.config import ServiceConfig

CAPABILITY = "service load-balancing state arrives with the kube-proxy replacement"


def main() -> None:
    raise SystemExit(
        runtime.run(
            "lb-programmer",
            ServiceConfig,
            runtime.idle(CAPABILITY),
            description="Weir lb-programmer (Services and EndpointSlices to load-balancer state)",
        )
    )
