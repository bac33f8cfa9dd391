"""Prometheus metrics: request count and latency by route template, database pool usage.

Served on `/metrics` (left out of the OpenAPI schema) when `METRICS_ENABLED` is true.
The metrics live in this module's own registry, so several apps in one process (tests)
share them instead of registering twice.
"""

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "http_requests",
    "HTTP requests handled, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to handle a request, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out_connections",
    "Database connections currently in use (not reported by pools without a size).",
    registry=REGISTRY,
)
POOL_SIZE = Gauge("db_pool_size", "Steady size of the database connection pool.", registry=REGISTRY)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    status_label = str(status)
    REQUESTS.labels(method, route, status_label).inc()
    LATENCY.labels(method, route, status_label).observe(seconds)


def _update_pool_gauges(request: Request) -> None:
    database = getattr(request.app.state, "database", None)
    pool = database.engine.pool if database is not None else None
    # QueuePool reports its usage; NullPool/StaticPool (some SQLite set-ups) have none.
    checked_out = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    if callable(checked_out) and callable(size):
        POOL_CHECKED_OUT.set(checked_out())
        POOL_SIZE.set(size())


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    _update_pool_gauges(request)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
