"""The health and metrics endpoint every Weir service serves.

- `/healthz` (and `/livez`): the process's event loop answers — restart me if it does not.
- `/readyz`: every readiness check passes — route work to me. Checks are named
  (`nats`, `sync`, ...) and the body lists each as `[+]name: detail` or `[-]name: detail`,
  the way kube-apiserver's `?verbose` output does, or as JSON with `Accept: application/json`.
- `/metrics`: the service's Prometheus registry in the text exposition format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

log = logging.getLogger("weir.health")


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str


class Health:
    """Readiness checks and metrics of one process; serves them over HTTP once started."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.registry = registry
        self._checks: dict[str, Check] = {}
        self._ready_gauge = Gauge(
            "weir_ready", "1 when every readiness check passes", registry=registry
        )
        self._check_gauge = Gauge(
            "weir_readiness_check",
            "1 when the named readiness check passes",
            ["check"],
            registry=registry,
        )
        self._runner: web.AppRunner | None = None
        self.port = 0

    def set(self, name: str, ok: bool, detail: str) -> None:
        """Record a readiness check's state; logs transitions."""
        before = self._checks.get(name)
        self._checks[name] = Check(ok, detail)
        if before is None or before.ok != ok or (not ok and before.detail != detail):
            log.log(
                logging.INFO if ok else logging.WARNING,
                "%s %s: %s",
                name,
                "ready" if ok else "not ready",
                detail,
                extra={"check": name},
            )
        self._check_gauge.labels(name).set(1 if ok else 0)
        self._ready_gauge.set(1 if self.ready else 0)

    @property
    def ready(self) -> bool:
        return bool(self._checks) and all(c.ok for c in self._checks.values())

    def checks(self) -> dict[str, Check]:
        return dict(self._checks)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str, port: int) -> int:
        """Serve on host:port (port 0 picks one); returns the port."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("health server on http://%s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        status = 200 if self.ready else 503
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response(
                {
                    "service": self.service,
                    "ready": self.ready,
                    "checks": {
                        n: {"ok": c.ok, "detail": c.detail} for n, c in self._checks.items()
                    },
                },
                status=status,
            )
        lines = [f"[{'+' if c.ok else '-'}]{n}: {c.detail}" for n, c in self._checks.items()]
        verdict = "ready" if self.ready else "not ready"
        lines.append(f"{self.service} is {verdict}")
        return web.Response(text="\n".join(lines) + "\n", status=status)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
