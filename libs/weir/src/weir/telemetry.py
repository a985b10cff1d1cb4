"""OpenTelemetry for Weir services: one trace per Kubernetes change, carried across NATS.

k8s-watcher starts a trace when the API reports a change; the W3C trace context rides in the
NATS headers of every message and KV write that change causes, and each service continues it.
Spans are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific
variable) is set — the standard OpenTelemetry environment variables configure the exporter —
and are otherwise created but not exported, so the code path is the same everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def otlp_endpoint(environ: Mapping[str, str] = os.environ) -> str | None:
    return next((environ[v] for v in _ENDPOINT_VARS if environ.get(v)), None)


def setup_tracing(
    service: str,
    *,
    environ: Mapping[str, str] = os.environ,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """Install the process's tracer provider. Call once, at start; `shutdown()` it at exit."""
    resource = Resource.create({"service.name": f"weir-{service}", "service.namespace": "weir"})
    provider = TracerProvider(resource=resource)
    if exporter is None and otlp_endpoint(environ):
        # Imported here: the exporter pulls in requests/protobuf, unneeded when not exporting.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    return provider


def inject(headers: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write the current (or given) span's W3C trace context into NATS message headers."""
    _PROPAGATOR.inject(headers, context=context)


def extract(headers: Mapping[str, str] | None) -> Context:
    """The trace context a message carried (an empty context when it carried none)."""
    return _PROPAGATOR.extract(dict(headers or {}))


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
