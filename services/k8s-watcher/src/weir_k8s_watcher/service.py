"""The k8s-watcher process: the Kubernetes API, mirrored into KV weir-k8s.

One informer per kind lists and watches the API; every object is normalized (normalize.py)
and the Mirror (core.py) decides which KV writes make the bucket equal the API. A full list
is always diffed against what the bucket actually holds, so a restart or a 410 converges with
no leftovers. Each change is one trace: a span starts when the event arrives, and its context
rides in the headers of the KV write, for every downstream service to continue.

Run one active replica: a second writer relisting at an older resourceVersion would delete
what the first had just written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from weir import catalog, runtime, telemetry
from weir.bus import TypedKv
from weir.config import ServiceConfig, setting
from weir.kube import api_client
from weir.kvwriter import PipelinedWriter
from weir.models import K8sObject

from .core import Mirror, Write
from .informer import KINDS, Informer, InformerSettings, Sink
from .normalize import NormalizeError, normalize

log = logging.getLogger("weir.k8s_watcher")

PREFIX: dict[str, str] = {
    model.__name__: prefix for model, prefix in catalog.K8S_KIND_PREFIX.items()
}


@dataclass(frozen=True, kw_only=True)
class WatcherConfig(ServiceConfig):
    kubeconfig: str = setting(
        "", "kubeconfig file; empty: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config"
    )
    kinds: tuple[str, ...] = setting(tuple(k.kind for k in KINDS), "kinds to mirror")
    list_page_size: int = setting(500, "objects per list page")
    watch_timeout_seconds: float = setting(300.0, "server-side timeout of one watch request")
    max_in_flight_writes: int = setting(1024, "KV writes sent but not yet acknowledged")


class WatcherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "weir_k8s_watcher_events",
            "Watch events received",
            ["kind", "type"],
            registry=registry,
        )
        self.rejected = Counter(
            "weir_k8s_watcher_rejected_objects",
            "API objects that could not be normalized (logged and skipped)",
            ["kind"],
            registry=registry,
        )
        self.relists = Counter(
            "weir_k8s_watcher_relists",
            "Full lists, by reason (start, expired, requested, retry)",
            ["kind", "reason"],
            registry=registry,
        )
        self.write_failures = Counter(
            "weir_k8s_watcher_write_failures",
            "KV writes that failed (each forces a relist)",
            ["kind"],
            registry=registry,
        )
        self.change_to_ack = Histogram(
            "weir_k8s_watcher_change_to_ack_seconds",
            "From receiving an API change to its KV write being acknowledged",
            ["kind"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.objects = Gauge(
            "weir_k8s_watcher_objects",
            "Objects mirrored in weir-k8s after the last list",
            ["kind"],
            registry=registry,
        )


def _raw_key(kind: str, obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        return None
    return catalog.k8s_key(PREFIX[kind], str(meta.get("namespace") or ""), str(name))


class Watcher(Sink):
    """Turns informer output into the minimal KV writes, and reports readiness."""

    def __init__(
        self,
        *,
        kv: TypedKv[K8sObject],
        metrics: WatcherMetrics,
        tracer: trace.Tracer,
        on_state: Callable[[bool, str], None],
        kinds: tuple[str, ...],
        max_in_flight: int = 1024,
    ) -> None:
        self.kv = kv
        self.mirror = Mirror()
        self.informers: dict[str, Informer] = {}
        # token: (kind, key, monotonic time the change was received)
        self.writer: PipelinedWriter[tuple[str, str, float]] = PipelinedWriter(
            kv.raw, on_done=self.written, max_in_flight=max_in_flight
        )
        self._metrics = metrics
        self._tracer = tracer
        self._on_state = on_state
        self._states: dict[str, tuple[bool, str]] = {k: (False, "listing") for k in kinds}

    # --- Sink ---------------------------------------------------------------------------------

    async def listed(self, kind: str, items: list[dict[str, Any]], resource_version: str) -> None:
        prefix = PREFIX[kind]
        with self._tracer.start_as_current_span(
            f"k8s list {kind}",
            attributes={
                "k8s.kind": kind,
                "k8s.resource_version": resource_version,
                "k8s.objects": len(items),
            },
        ) as list_span:
            await self.writer.drain()  # the bucket must reflect every write already sent
            self.mirror.load(prefix, await self._actual(prefix))
            listed: dict[str, bytes] = {}
            for raw in items:
                key = _raw_key(kind, raw)
                obj = self._normalize(kind, raw)
                if obj is not None:
                    listed[catalog.k8s_key_of(obj)] = self.kv.encode(obj)
                elif key is not None and (held := self.mirror.get(key)) is not None:
                    listed[key] = held  # unusable now: keep the last good value, lose nothing
            writes = self.mirror.resync(prefix, listed)
            link = Link(list_span.get_span_context())
            started = time.monotonic()
            for w in writes:
                # One trace per object changed, linked to the list that found the change.
                with self._tracer.start_as_current_span(
                    f"k8s resync {kind}",
                    kind=SpanKind.PRODUCER,
                    links=[link],
                    context=telemetry.extract({}),
                    attributes={"k8s.kind": kind, "weir.key": w.key},
                ):
                    await self._send(kind, w, started)
            await self.writer.drain()
            self._metrics.objects.labels(kind).set(len(listed))
            log.info(
                "%s: listed %d at resourceVersion %s; %d writes",
                kind,
                len(items),
                resource_version,
                len(writes),
                extra={"kind": kind, "writes": len(writes)},
            )

    async def changed(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        started = time.monotonic()
        self._metrics.events.labels(kind, event).inc()
        meta = obj.get("metadata") or {}
        attributes = {
            "k8s.kind": kind,
            "k8s.event": event,
            "k8s.namespace": str(meta.get("namespace") or ""),
            "k8s.name": str(meta.get("name") or ""),
            "k8s.resource_version": str(meta.get("resourceVersion") or ""),
        }
        with self._tracer.start_as_current_span(
            f"k8s {event} {kind}",
            kind=SpanKind.PRODUCER,
            attributes=attributes,
            context=telemetry.extract({}),  # each change starts its own trace
        ):
            key = _raw_key(kind, obj)
            if key is None:
                self._reject(kind, obj, "metadata.name is missing")
                return
            write: Write | None
            if event == "DELETED":
                write = self.mirror.delete(key)
            else:
                model = self._normalize(kind, obj)
                if model is None:
                    return
                write = self.mirror.put(key, self.kv.encode(model))
            if write is not None:
                await self._send(kind, write, started)

    def state(self, kind: str, healthy: bool, detail: str) -> None:
        self._states[kind] = (healthy, detail)
        waiting = {k: d for k, (ok, d) in self._states.items() if not ok}
        if waiting:
            self._on_state(False, "; ".join(f"{k}: {d}" for k, d in sorted(waiting.items())))
        else:
            self._on_state(True, f"listed and watching {len(self._states)} kinds")

    # --- writes -------------------------------------------------------------------------------

    async def _send(self, kind: str, write: Write, started: float) -> None:
        headers: dict[str, str] = {}
        telemetry.inject(headers)
        self.kv.count_write("delete" if write.is_delete else "put")
        await self.writer.send(write.key, write.value, headers, (kind, write.key, started))

    def written(self, write: tuple[str, str, float], error: BaseException | None) -> None:
        kind, key, started = write
        if error is None:
            self._metrics.change_to_ack.labels(kind).observe(time.monotonic() - started)
        else:
            self.write_failed(kind, key, error)

    def write_failed(self, kind: str, key: str, error: BaseException) -> None:
        self._metrics.write_failures.labels(kind).inc()
        self.mirror.forget(key)
        informer = self.informers.get(kind)
        if informer is not None:
            informer.request_relist()

    # --- helpers ------------------------------------------------------------------------------

    async def _actual(self, prefix: str) -> dict[str, bytes]:
        """What the bucket holds under `prefix`. Undecodable values are reported (and will be
        overwritten or deleted by the resync, since they cannot equal a fresh encoding)."""
        entries = await self.kv.raw.snapshot(f"{prefix}.>")
        for key, entry in entries.items():
            assert entry.value is not None
            self.kv.decode(key, entry.value)
        return {key: entry.value for key, entry in entries.items() if entry.value is not None}

    def _normalize(self, kind: str, raw: Mapping[str, Any]) -> K8sObject | None:
        try:
            return normalize(kind, raw)
        except NormalizeError as e:
            self._reject(kind, raw, str(e))
            return None

    def _reject(self, kind: str, raw: Mapping[str, Any], why: str) -> None:
        self._metrics.rejected.labels(kind).inc()
        meta = raw.get("metadata") or {}
        log.error(
            "skipping %s %s/%s: %s",
            kind,
            meta.get("namespace", ""),
            meta.get("name", "?"),
            why,
            extra={
                "kind": kind,
                "namespace": meta.get("namespace", ""),
                "name": meta.get("name", ""),
            },
        )


async def run(rt: runtime.Runtime[WatcherConfig]) -> None:
    cfg = rt.config
    unknown = sorted(set(cfg.kinds) - set(PREFIX))
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; known: {sorted(PREFIX)}")
    kv = await rt.bucket(catalog.K8S)
    metrics = WatcherMetrics(rt.registry)
    watched = [k for k in KINDS if k.kind in cfg.kinds]
    rt.health.set("sync", False, "starting")

    def on_state(ok: bool, detail: str) -> None:
        rt.health.set("sync", ok, detail)

    watcher = Watcher(
        kv=kv,
        max_in_flight=cfg.max_in_flight_writes,
        metrics=metrics,
        tracer=rt.tracer,
        on_state=on_state,
        kinds=tuple(k.kind for k in watched),
    )
    settings = InformerSettings(
        page_size=cfg.list_page_size, watch_timeout=cfg.watch_timeout_seconds
    )
    async with await api_client(cfg.kubeconfig) as api, asyncio.TaskGroup() as tasks:
        await rt.serve_barrier(lambda: _barrier(api, watcher))
        tasks.create_task(watcher.writer.run(), name="kv-acks")
        for kind in watched:
            informer = Informer(
                kind,
                api,
                watcher,
                settings,
                on_relist=lambda k, why: metrics.relists.labels(k, why).inc(),
            )
            watcher.informers[kind.kind] = informer
            tasks.create_task(informer.run(), name=f"informer-{kind.kind}")


def _rv(text: str) -> int:
    # resourceVersions are opaque to clients in general, but etcd's (and the local API
    # server's) are one global increasing counter: comparing them is how "caught up" is known.
    return int(text) if text.isdigit() else 0


async def _barrier(api: client.ApiClient, watcher: Watcher) -> runtime.BarrierCheck:
    """Converged once every informer has seen the API up to its state at the barrier."""
    # With _preload_content=False the generated call returns the raw aiohttp response.
    resp = cast(
        aiohttp.ClientResponse,
        await client.CoreV1Api(api).list_namespace(
            limit=1, _preload_content=False, _request_timeout=10
        ),
    )
    try:
        target = _rv(str(((await resp.json()).get("metadata") or {}).get("resourceVersion")))
    finally:
        resp.release()

    async def check() -> tuple[bool, str]:
        behind = sorted(
            kind
            for kind, informer in watcher.informers.items()
            if _rv(informer.resource_version) < target
        )
        if behind:
            return False, f"{', '.join(behind)} not yet at resourceVersion {target}"
        if watcher.writer.in_flight:
            return False, f"{watcher.writer.in_flight} KV writes not yet acknowledged"
        return True, f"weir-k8s mirrors the API as of resourceVersion {target}"

    return check


def main() -> None:
    raise SystemExit(
        runtime.run(
            "k8s-watcher",
            WatcherConfig,
            run,
            description="Weir k8s-watcher: the Kubernetes API mirrored into KV weir-k8s",
        )
    )
