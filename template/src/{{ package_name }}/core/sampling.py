"""Which traces are kept: imported only when tracing is on (core/tracing.py)."""

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class NoStrayClientSpans(Sampler):
    """Starts a share of the traces, but never one with a client span (an SQL statement, a
    Redis command): such a span belongs to no request or job. It is a probe's check, or a
    loop polling a queue every second; keeping them would drown the real traces."""

    def __init__(self, ratio: float) -> None:
        self.ratio_based = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self.ratio_based.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoStrayClientSpans{{{self.ratio_based.get_description()}}}"


def sampler(ratio: float) -> Sampler:
    """A caller's decision (a `traceparent`) wins; a new trace is kept at `ratio`."""
    return ParentBased(NoStrayClientSpans(ratio))
