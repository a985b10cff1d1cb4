"""The health server: liveness, readiness with named checks, Prometheus metrics."""

from __future__ import annotations

import aiohttp
from prometheus_client import CollectorRegistry, Counter
from weir.health import Health


async def test_readiness_follows_every_check() -> None:
    registry = CollectorRegistry()
    Counter("demo_things", "things", registry=registry).inc(3)
    health = Health("demo", registry)
    port = await health.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 503  # no checks yet: not ready
            health.set("nats", True, "connected")
            health.set("sync", False, "listing pods")
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 503
                body = await r.text()
                assert "[+]nats: connected" in body and "[-]sync: listing pods" in body
            health.set("sync", True, "caught up")
            async with http.get(f"{base}/readyz", headers={"Accept": "application/json"}) as r:
                assert r.status == 200
                data = await r.json()
                assert data["ready"] and data["checks"]["sync"] == {
                    "ok": True,
                    "detail": "caught up",
                }
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
                assert r.headers["Content-Type"].startswith("text/plain")
                assert "demo_things_total 3.0" in text
                assert "weir_ready 1.0" in text
                assert 'weir_readiness_check{check="sync"} 1.0' in text
    finally:
        await health.stop()
