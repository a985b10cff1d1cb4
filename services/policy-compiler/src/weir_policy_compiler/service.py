"""The policy-compiler process: NetworkPolicy in, one compiled policy per endpoint out.

Three watches feed one loop: namespaces, pods and NetworkPolicies from weir-k8s (its other
kinds are skipped), identities from weir-identities, addresses from weir-ipcache. The loop
applies each change to the core (core.py), which marks just the endpoints it can affect; once
no change is waiting (or a batch is full) the dirty endpoints are recompiled and only values
whose bytes differ are written to weir-policy, pipelined, each carrying the trace context of
the change that caused it. Policies that cannot be fully compiled are logged, counted and
posted as Kubernetes Events on the policy.

Nothing is written before every watch has replayed its bucket: then every endpoint is compiled
once, keys no endpoint owns are deleted, and the service is ready. Barriers are answered once
every watch is caught up, nothing is left to recompile and every write is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from weir import catalog, runtime
from weir.bus import CaughtUp, TypedKv, Update, WatchCursor
from weir.kvwriter import PipelinedWriter
from weir.models import EndpointPolicy, Identity, IPCacheEntry, Namespace, NetworkPolicy, Pod

from .compile import Settings
from .config import CompilerConfig
from .core import Compiler
from .metrics import Metrics
from .recorder import EventRecorder

log = logging.getLogger("weir.policy_compiler")


@dataclass(frozen=True, slots=True)
class Source:
    """One watch: a bucket, the keys it needs, and how a change reaches the core."""

    name: str
    bucket: TypedKv[Any]
    pattern: str
    apply: Callable[[str, Any, Any], None]  # (key, value or None, trace context)
    cursor: WatchCursor


class _Kick:
    """Queue marker: a write failed, recompile what it left unknown."""


_KICK = _Kick()
_Item = tuple[Source, Update[Any] | CaughtUp] | _Kick


class PolicyCompilerService:
    def __init__(self, rt: runtime.Runtime[CompilerConfig], buckets: dict[str, TypedKv[Any]]):
        cfg = rt.config
        self.rt = rt
        self.metrics = Metrics(rt.registry)
        self.policy: TypedKv[EndpointPolicy] = buckets["policy"]
        self.compiler = Compiler(
            Settings(
                allow_host_ingress=cfg.allow_host_ingress,
                ipblock_matches_pods=cfg.ipblock_matches_pods,
            ),
            self.policy.encode,
        )
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        # token: (key, was it a delete)
        self.writer: PipelinedWriter[tuple[str, bool]] = PipelinedWriter(
            self.policy.raw, on_done=self._written, max_in_flight=cfg.max_in_flight_writes
        )
        self.recorder = EventRecorder(
            kubeconfig=cfg.kubeconfig, metrics=self.metrics, enabled=cfg.events
        )
        c = self.compiler
        # One watch per bucket (weir-k8s unfiltered, its other kinds skipped): one stream
        # order per bucket, and one cursor for the barrier to ask about.
        self.sources = [
            Source("weir-k8s", buckets["k8s"], ">", self._k8s, WatchCursor("weir-k8s")),
            Source(
                "weir-identities",
                buckets["identities"],
                ">",
                lambda k, v, ctx: c.identity_changed(k, _typed(v, Identity), ctx),
                WatchCursor("weir-identities"),
            ),
            Source(
                "weir-ipcache",
                buckets["ipcache"],
                ">",
                lambda k, v, ctx: c.ipcache_changed(k, _typed(v, IPCacheEntry), ctx),
                WatchCursor("weir-ipcache"),
            ),
        ]
        self._replaying = {s.name for s in self.sources}

    # --- weir-k8s keys -> the core ------------------------------------------------------------

    def _k8s(self, key: str, value: Any, ctx: Any) -> None:
        """Namespaces, pods and NetworkPolicies; the other kinds are not inputs of policy."""
        kind, _, rest = key.partition(".")
        if kind == "namespace":
            self.compiler.namespace_changed(rest, _typed(value, Namespace), ctx)
            return
        namespace, _, name = rest.partition(".")
        if kind == "pod":
            self.compiler.pod_changed(namespace, name, _typed(value, Pod), ctx)
        elif kind == "networkpolicy":
            self.compiler.policy_changed(namespace, name, _typed(value, NetworkPolicy), ctx)

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.rt.health.set("sync", False, "replaying weir-k8s, weir-identities and weir-ipcache")
        await self._load_output()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.writer.run(), name="kv-acks")
            tasks.create_task(self.recorder.run(), name="events")
            for source in self.sources:
                tasks.create_task(self._pump(source), name=f"watch-{source.name}")
            await self.rt.serve_barrier(
                runtime.kv_barrier(*(s.cursor for s in self.sources), busy=self.busy)
            )
            tasks.create_task(self._loop(), name="compile")

    async def _load_output(self) -> None:
        held = await self.policy.raw.snapshot()
        self.compiler.load_output(
            {
                key: (entry.value, self.policy.decode(key, entry.value))
                for key, entry in held.items()
                if entry.value is not None
            }
        )
        log.info("weir-policy holds %d endpoint policies", len(held))

    async def _pump(self, source: Source) -> None:
        async for item in source.bucket.watch(source.pattern, source.cursor):
            await self.queue.put((source, item))

    async def _loop(self) -> None:
        max_batch = self.rt.config.max_batch
        rested_until = 0.0
        while True:
            self._apply(await self.queue.get())
            self._apply_waiting(max_batch - 1)
            if self.compiler.started and self.compiler.pending:
                # Compile at most half the time: after a flush that took T, gather input for
                # another T first. Small flushes (a millisecond) are barely delayed; a large
                # policy whose CIDR identities trickle in is compiled a few times, not once
                # per arrival, and the watches keep being read meanwhile.
                pause = rested_until - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                    self._apply_waiting(max_batch)
            for report in self.compiler.take_reports():
                self.recorder.report(report)
            if not self.compiler.started and not self._replaying:
                await self._start()
            elif self.compiler.started:
                began = time.monotonic()
                await self._flush()
                ended = time.monotonic()
                rested_until = ended + (ended - began)

    def _apply_waiting(self, limit: int) -> None:
        """Apply up to `limit` queued items without waiting for more."""
        for _ in range(limit):
            if self.queue.empty():
                return
            self._apply(self.queue.get_nowait())

    def _apply(self, item: _Item) -> None:
        if isinstance(item, _Kick):
            return
        source, update = item
        if isinstance(update, CaughtUp):
            self._replaying.discard(source.name)
            return
        with self.rt.tracer.start_as_current_span(
            f"policy-compiler apply {source.name}",
            context=update.context,
            kind=SpanKind.CONSUMER,
            attributes={"weir.key": update.key, "weir.deleted": update.value is None},
        ):
            source.apply(update.key, update.value, otel_context.get_current())
        source.cursor.mark_applied(update.revision)

    async def _start(self) -> None:
        started = time.monotonic()
        self.compiler.start()
        writes = await self._flush()
        await self.writer.drain()
        detail = (
            f"compiled {self.compiler.endpoints} endpoints ({self.compiler.entries} entries) "
            f"in {time.monotonic() - started:.2f}s; {writes} writes"
        )
        log.info(detail)
        self.rt.health.set("sync", True, detail)

    async def _flush(self) -> int:
        with self.metrics.flush_seconds.time():
            writes = self.compiler.flush()
        for w in writes:
            op = "delete" if w.is_delete else "put"
            self.metrics.writes.labels(op).inc()
            self.policy.count_write(op)
            headers = TypedKv.trace_headers(w.context)
            await self.writer.send(w.key, w.value, headers, (w.key, w.value is None))
        self.metrics.observe(self.compiler)
        return len(writes)

    def _written(self, write: tuple[str, bool], error: BaseException | None) -> None:
        if error is None:
            return
        key, was_delete = write
        self.metrics.write_failures.inc()
        self.compiler.forget(key, was_delete=was_delete)
        self.queue.put_nowait(_KICK)

    def busy(self) -> str:
        """What still stands between the inputs applied so far and weir-policy (barriers)."""
        if not self.compiler.started:
            return "initial replay not applied yet: " + ", ".join(sorted(self._replaying))
        if self.compiler.pending:
            return f"{self.compiler.pending} endpoints to recompile"
        if self.writer.in_flight:
            return f"{self.writer.in_flight} weir-policy writes not yet acknowledged"
        return ""


def _typed(value: Any, kind: type[Any]) -> Any:
    """The value when it is of the kind the key promises; None (a delete) otherwise."""
    if value is None or isinstance(value, kind):
        return value
    log.error("ignoring a %s where a %s belongs", type(value).__name__, kind.__name__)
    return None


async def run(rt: runtime.Runtime[CompilerConfig]) -> None:
    # Not ready until the first compile is written: registered before anything is awaited, so
    # /readyz never answers 200 in between (nor before the barrier is served).
    rt.health.set("sync", False, "opening buckets")
    buckets: dict[str, TypedKv[Any]] = {
        "k8s": await rt.bucket(catalog.K8S),
        "identities": await rt.bucket(catalog.IDENTITIES),
        "ipcache": await rt.bucket(catalog.IPCACHE),
        "policy": await rt.bucket(catalog.POLICY),
    }
    await PolicyCompilerService(rt, buckets).run()


def main() -> None:
    raise SystemExit(
        runtime.run(
            "policy-compiler",
            CompilerConfig,
            run,
            description="Weir policy-compiler: NetworkPolicy compiled to per-endpoint tables",
        )
    )
