"""Prometheus metrics, safe across gunicorn workers and Celery prefork children.

prometheus_client chooses multiprocess mode when it is first imported, from
``PROMETHEUS_MULTIPROC_DIR``: the process entry points set it (and make the directory)
before anything imports this module (`kustom_app.metrics_directory`), so every process
writes its samples to its top process's directory. ``GET /metrics`` on a worker or beat
(workers/metrics_server.py) sums that process's directory (a worker and its pool
children); on the web, every directory of the node (web, and worker and beat where they
share the host). Gauges read from Redis at scrape time come beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from kustom_app.dead_letters import dead_letters_key

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

HTTP_REQUESTS = Counter(
    "kustom_http_requests_total", "HTTP requests answered", ["endpoint", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "kustom_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
CART_EVENTS = Counter(
    "kustom_cart_events_total",
    "Cart renders received, by what happened to them "
    "(enqueued: a sync job was queued; coalesced: folded into a queued or running sync; "
    "unchanged: equal to what Kustom has; stale: older version ignored; no_order: no "
    "Kustom order yet; unpayable)",
    ["outcome"],
)
SYNC_LAG = Histogram(
    "kustom_sync_lag_seconds",
    "From a new pending hash to Kustom's order having it (syncing false)",
    buckets=LAG_BUCKETS,
)
SYNC_PUSHES = Counter("kustom_sync_pushes_total", "Kustom order updates pushed by sync jobs")
SYNC_UNKNOWN_OUTCOMES = Counter(
    "kustom_sync_unknown_outcomes_total",
    "Sync pushes whose answer never came, and how each was settled once it could no longer "
    "land (no_answer: an update got none; verified: Kustom's order read back equal to the "
    "newest payload, no push; differed: read back different, pushed again)",
    ["outcome"],
)
KUSTOM_CALLS = Counter("kustom_api_calls_total", "Calls to Kustom's API", ["operation", "outcome"])
KUSTOM_LATENCY = Histogram(
    "kustom_api_call_duration_seconds",
    "Kustom API call latency",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
COMPLETIONS = Counter(
    "kustom_completions_total", "Carts completed, by the path that completed them", ["path"]
)
COMPLETION_MISMATCHES = Counter(
    "kustom_completion_mismatches_total", "Completions refused: Kustom's order != cart", ["path"]
)
VALIDATIONS = Counter(
    "kustom_validation_outcomes_total", "Validation callback answers", ["outcome", "code"]
)
NOTIFICATIONS = Counter(
    "kustom_notifications_total",
    "Kustom notifications answered 200, by event type: one of the fraud events, or "
    "unknown (answered and ignored)",
    ["event_type"],
)
RECONCILE_FIXES = Counter(
    "kustom_reconcile_fixes_total", "What the sweeper found and re-queued", ["kind"]
)
DEAD_LETTERS = Counter("kustom_dead_letters_total", "Tasks that gave up", ["task"])
PAYMENT_OPERATIONS = Counter(
    "kustom_payment_operations_total",
    "Captures, refunds and cancels finished, by outcome",
    ["kind", "status"],
)


class RedisStateCollector:
    """Gauges read from Redis at scrape time: the same numbers on every node."""

    def __init__(self, redis_client: Any, prefix: str) -> None:
        self.redis = redis_client
        self.prefix = prefix

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = {
            "kustom_carts_syncing": ("Carts whose Kustom order is behind the cart", "syncing"),
            "kustom_completions_in_progress": ("Completion claims held", "claims"),
            "kustom_orders_unacknowledged": ("Completed orders not yet acknowledged", "unacked"),
            "kustom_completion_mismatches_open": ("Orders waiting for an operator", "mismatches"),
        }
        try:
            pipe = self.redis.pipeline(transaction=False)
            for _, suffix in gauges.values():
                pipe.zcard(f"{self.prefix}:{suffix}")
            pipe.llen(dead_letters_key(self.prefix))
            values = pipe.execute()
        except Exception:  # a scrape must not fail because Redis is away
            return
        for (name, (help_text, _)), value in zip(gauges.items(), values, strict=False):
            yield GaugeMetricFamily(name, help_text, value=value)
        yield GaugeMetricFamily(
            "kustom_dead_letter_entries", "Entries in the dead-letter list", value=values[-1]
        )


class QueueDepthCollector:
    """``kustom_queue_depth{queue}``: messages waiting in each broker queue, read at scrape
    time (the lengths of the broker's Redis lists of that queue, ``keys[queue]``)."""

    def __init__(self, broker_redis: Any, keys: Mapping[str, Sequence[str]]) -> None:
        self.redis = broker_redis
        self.keys = keys

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for lists in self.keys.values():
                for key in lists:
                    pipe.llen(key)
            lengths = iter(pipe.execute())
        except Exception:  # a scrape must not fail because the broker is away
            return
        family = GaugeMetricFamily(
            "kustom_queue_depth", "Messages waiting in the broker queue", labels=["queue"]
        )
        for queue, lists in self.keys.items():
            family.add_metric([queue], sum(next(lengths) for _ in lists))
        yield family


class SampleFilesCollector:
    """The samples the processes writing to ``directories`` made, summed (counters and
    histograms add up across a worker's pool children, a web's gunicorn workers)."""

    def __init__(self, directories: Iterable[Path]) -> None:
        self.directories = list(directories)

    def collect(self) -> Iterable[Any]:
        files = sorted(str(f) for d in self.directories if d.is_dir() for f in d.glob("*.db"))
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


def render_metrics(
    directories: Iterable[Path],
    *,
    state: RedisStateCollector | None = None,
    queue_depth: QueueDepthCollector | None = None,
) -> tuple[bytes, str]:
    """The text exposition of the samples in ``directories``, plus, when given, the Redis
    gauges and the queue depths."""
    registry = CollectorRegistry()
    registry.register(SampleFilesCollector(directories))
    for collector in (state, queue_depth):
        if collector is not None:
            registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead worker's live-only samples."""
    multiprocess.mark_process_dead(pid)
