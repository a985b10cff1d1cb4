"""The shell every Weir service runs in: config, logs, traces, health, NATS, clean shutdown.

A service provides its config dataclass and one coroutine `main(rt)`; `run()` does the rest in
a fixed order — settings (or `--print-config`), logging, tracing, the health server (so
liveness answers even while NATS is unreachable), the NATS connection (retried until it
succeeds), then `main` — and on SIGTERM/SIGINT cancels `main`, drains NATS and flushes spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry import trace
from prometheus_client import CollectorRegistry, ProcessCollector

from weir import bus, catalog, config, logs, telemetry
from weir.catalog import Bucket
from weir.codec import Codec, CodecError
from weir.health import Health
from weir.models import BarrierReply

C = TypeVar("C", bound=config.ServiceConfig)
T = TypeVar("T")
log = logging.getLogger("weir.runtime")
BarrierCheck = Callable[[], Awaitable[tuple[bool, str]]]
BarrierBegin = Callable[[], Awaitable[BarrierCheck]]


@dataclass
class Runtime(Generic[C]):
    """What a running service is handed: its settings and its connections."""

    name: str
    config: C
    nc: NATS
    js: JetStreamContext
    health: Health
    registry: CollectorRegistry
    bus_metrics: bus.BusMetrics
    tracer: trace.Tracer

    async def bucket(self, spec: Bucket[T]) -> bus.TypedKv[T]:
        """Open (creating if needed) a catalogue bucket."""
        return await bus.open_bucket(
            self.js, spec, self.bus_metrics, replicas=self.config.kv_replicas
        )

    async def serve_barrier(self, begin: BarrierBegin, *, node: str = "") -> None:
        """Answer convergence barriers (catalog.BARRIER).

        On each request `begin()` notes what is pending right then and returns a check, which
        is polled until it says converged or the requester's wait has passed. Each request
        waits in its own task, so one slow barrier never delays another.
        """
        codec = Codec(catalog.BARRIER_SCHEMA)
        waiting: set[asyncio.Task[None]] = set()

        async def answer(msg: Msg) -> None:
            try:
                request = codec.decode(msg.data)
            except CodecError as e:
                self.bus_metrics.decode_errors.labels(msg.subject, e.reason).inc()
                log.warning("bad barrier request on %s: %s", msg.subject, e)
                return
            wait = min(getattr(request, "wait_seconds", 10.0), 60.0)
            deadline = time.monotonic() + wait
            check = await begin()
            converged, detail = await check()
            while not converged and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                converged, detail = await check()
            reply = BarrierReply(service=self.name, node=node, converged=converged, detail=detail)
            await msg.respond(codec.encode(reply))

        async def on_request(msg: Msg) -> None:
            task = asyncio.ensure_future(answer(msg))
            waiting.add(task)
            task.add_done_callback(waiting.discard)

        await self.nc.subscribe(
            catalog.barrier_subject(self.name, node), queue="barrier", cb=on_request
        )


ServiceMain = Callable[[Runtime[Any]], Awaitable[None]]


def run(
    name: str,
    config_type: type[C],
    service_main: Callable[[Runtime[C]], Awaitable[None]],
    *,
    description: str,
    argv: list[str] | None = None,
) -> int:
    """Run a service until it is signalled to stop. Returns the process exit code."""
    prog = f"weir-{name}"
    try:
        loaded = config.load(config_type, prog=prog, description=description, argv=argv)
    except config.ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    if loaded.print_config:
        sys.stdout.write(config.render(loaded, prog))
        return 0
    cfg = loaded.config
    logs.configure(name, level=cfg.log_level, fmt=cfg.log_format)
    provider = telemetry.setup_tracing(name)
    try:
        asyncio.run(_serve(name, cfg, service_main))
    except ServiceFailed:
        return 1
    finally:
        provider.shutdown()
    return 0


class ServiceFailed(Exception):
    """The service's main coroutine raised; it has been logged."""


async def _serve(name: str, cfg: C, service_main: Callable[[Runtime[C]], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    health = Health(name, registry)
    await health.start(cfg.health_host, cfg.health_port)
    health.set("nats", False, f"connecting to {cfg.nats_url}")
    log.info("starting", extra={"config": repr(cfg)})
    nc: NATS | None = None
    try:
        connecting = asyncio.ensure_future(
            bus.connect(
                cfg.nats_url,
                name=f"weir-{name}",
                on_change=lambda ok, why: health.set("nats", ok, why),
            )
        )
        if not await _until_stopped(connecting, stop):
            return
        nc = connecting.result()
        rt = Runtime(
            name=name,
            config=cfg,
            nc=nc,
            js=nc.jetstream(),
            health=health,
            registry=registry,
            bus_metrics=bus.BusMetrics(registry),
            tracer=trace.get_tracer(f"weir.{name}"),
        )
        main = asyncio.ensure_future(service_main(rt))
        if await _until_stopped(main, stop):
            try:
                main.result()
            except Exception as e:
                log.exception("service failed: %s", e)
                raise ServiceFailed from e
            log.info("service finished")
        else:
            log.info("stopping on signal")
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.drain(), timeout=5)
        await health.stop()


async def _until_stopped(task: asyncio.Future[Any], stop: asyncio.Event) -> bool:
    """Wait for `task` or a stop signal. False (and `task` cancelled) when stopped first."""
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False


def kv_barrier(*cursors: bus.WatchCursor, busy: Callable[[], str] = lambda: "") -> BarrierBegin:
    """The barrier of a KV consumer: converged once every cursor is caught up and `busy()`
    (e.g. writes still unacknowledged) has nothing to report."""

    async def check() -> tuple[bool, str]:
        for cursor in cursors:
            if not await cursor.caught_up():
                return (
                    False,
                    f"{cursor.name}: still applying (delivered {cursor.delivered}, "
                    f"applied {cursor.applied})",
                )
        pending = busy()
        if pending:
            return False, pending
        return True, "applied everything pending in " + ", ".join(c.name for c in cursors)

    async def begin() -> BarrierCheck:
        return check

    return begin


def idle(capability: str) -> Callable[[Runtime[Any]], Awaitable[None]]:
    """The main of a service whose work has not been built yet: connected, ready, honest."""

    async def main(rt: Runtime[Any]) -> None:
        detail = f"nothing to do yet: {capability}"

        async def nothing_pending() -> tuple[bool, str]:
            return True, detail

        async def begin() -> BarrierCheck:
            return nothing_pending

        await rt.serve_barrier(begin)
        rt.health.set("work", True, detail)
        log.info(detail)
        await asyncio.Event().wait()

    return main
