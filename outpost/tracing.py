"""OpenTelemetry traces, off unless the standard OTEL_* variables ask for them: a span for
each publish (kind PRODUCER) and one for each delivery attempt (kind CONSUMER), the
attempt's a child of its event's publish span. The publish span's context travels with the
stored event (its W3C `traceparent`; queue/items.py stores it), so every attempt of an
event, retries included and in whatever worker, joins the publish's trace.

On when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and
neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none); the exporter is OTLP over
HTTP/protobuf, which reads the rest of its OTEL_EXPORTER_OTLP_* variables itself
(headers, timeout, compression), as the SDK reads OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER. Attributes name ids and the destination
type, never a credential or a payload."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import structlog
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = structlog.get_logger("outpost")
_PROPAGATOR = TraceContextTextMapPropagator()
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def configured(environ: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINTS)


class Tracing:
    """The process's tracer, or nothing (`enabled` False: every hook is one check)."""

    def __init__(self, provider: TracerProvider | None = None):
        self.provider = provider
        self.enabled = provider is not None
        self.tracer: Tracer | None = provider.get_tracer("outpost") if provider else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Tracing:
        if not configured(environ):
            return cls(None)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            log.warning("otel_protocol_unsupported", protocol=protocol, using="http/protobuf")
        named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        resource = Resource.create({} if named else {"service.name": "outpost"})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("tracing_enabled", exporter="otlp", protocol="http/protobuf")
        return cls(provider)

    @contextlib.contextmanager
    def publish(self, attributes: dict[str, Any]) -> Iterator[str]:
        """A publish span (one event's, or a batch's); yields its `traceparent` for the
        stored events."""
        assert self.tracer is not None
        with self.tracer.start_as_current_span(
            "outpost.publish", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, set_span_in_context(span))
            yield carrier.get("traceparent", "")

    def attempt(
        self, traceparent: str, attributes: dict[str, Any], start_ns: int, error: str = ""
    ) -> None:
        """One attempt's span, from `start_ns` to now, a child of its publish span."""
        assert self.tracer is not None
        parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        span = self.tracer.start_span(
            "outpost.attempt",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=start_ns,
        )
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    def shutdown(self) -> None:
        """Send the spans still buffered, stop the exporter."""
        if self.provider is not None:
            self.provider.shutdown()
