"""The worker's and beat's own HTTP endpoints: ``GET /metrics`` and ``GET /healthz``.

A worker-only host (compose, Kubernetes) has no web process to serve its counters, so the
worker serves them itself on ``WORKER_METRICS_PORT`` (default 9540) and beat on the next
port, bound to ``WORKER_METRICS_HOST`` (default 0.0.0.0: every node is scraped).

- ``/metrics``: the samples of this process's metrics directory (a worker's parent and its
  prefork pool children, summed; `kustom_app.metrics_directory`), and, on the worker, the
  gauges read from Redis at scrape time: the queue depths (``kustom_queue_depth``) and the
  cart-state gauges the web shows too.
- ``/healthz``: 200 while this process reaches its broker (a PING with 1 s connect and read
  timeouts), else 503 with the service's error shape; the Kubernetes probes use it.

The server runs in a daemon thread of the worker's main process, started once the worker
is ready (its pool forked), and of beat's process. A port already taken is logged and the
process goes on without it: the tasks matter more than their counters.

Nothing here imports prometheus_client when this module is imported: the Celery app
imports it before the metrics directory is set up.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kustom_app.logs import event_log

log = event_log(__name__)

QUEUES = ("kustom.sync", "kustom.orders")
HEALTH_TIMEOUT_SECONDS = 1.0


def broker_queue_lists(queues: tuple[str, ...] = QUEUES) -> dict[str, list[str]]:
    """The broker's Redis lists of each queue: kombu's Redis transport keeps one list per
    priority step, the queue's own name for the default priority."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    return {q: [q, *(f"{q}{Channel.sep}{step}" for step in PRIORITY_STEPS if step)] for q in queues}


class MetricsServer:
    """``/metrics`` from ``render()`` and ``/healthz`` from ``healthy()`` on host:port."""

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], tuple[bytes, str]],
        healthy: Callable[[], bool],
    ) -> None:
        self.render = render
        self.healthy = healthy
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="kustom-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler_for(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, content_type = server.render()
                self._answer(200, body, content_type)
            elif path == "/healthz":
                if server.healthy():
                    self._json(200, {"status": "ok"})
                else:
                    self._error(503, "broker_unavailable", "The broker does not answer.")
            else:
                self._error(404, "not_found", "Only /metrics and /healthz are served here.")

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(status, {"error": {"code": code, "message": message, "details": {}}})

        def _json(self, status: int, document: dict[str, Any]) -> None:
            self._answer(status, json.dumps(document).encode(), "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics.request", line=format % args)

    return Handler


class BrokerProbe:
    """Whether the broker answers a PING, within `HEALTH_TIMEOUT_SECONDS` each for the
    connect and the answer (one client, reused)."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self._client: Any = None

    def __call__(self) -> bool:
        from kustom_app.redis_connection import redis_from_url

        try:
            if self._client is None:
                self._client = redis_from_url(
                    self.broker_url,
                    socket_connect_timeout=HEALTH_TIMEOUT_SECONDS,
                    socket_timeout=HEALTH_TIMEOUT_SECONDS,
                )
            return bool(self._client.ping())
        except Exception as e:
            log.warning("metrics.healthz.broker_unreachable", error=type(e).__name__)
            return False


_servers: list[MetricsServer] = []


def serve_process_metrics(kind: str) -> MetricsServer | None:
    """Start this worker's (``kind`` "worker") or beat's ("beat") server from the process's
    settings; None (logged) when its port cannot be bound."""
    from kustom_app.metrics import QueueDepthCollector, RedisStateCollector, render_metrics
    from kustom_app.metrics_directory import process_directory
    from kustom_app.services import process_services

    services = process_services()
    settings = services.settings
    port = settings.worker_metrics_port + (1 if kind == "beat" else 0)
    state = RedisStateCollector(services.redis, settings.key_prefix)
    queues = QueueDepthCollector(services.broker_redis, broker_queue_lists())
    directory = process_directory()

    def render() -> tuple[bytes, str]:
        if kind == "beat":
            return render_metrics([directory])
        return render_metrics([directory], state=state, queue_depth=queues)

    try:
        server = MetricsServer(
            settings.worker_metrics_host, port, render, BrokerProbe(settings.celery_broker_url)
        )
    except OSError as e:
        log.error(
            "metrics.server.unavailable",
            kind=kind,
            host=settings.worker_metrics_host,
            port=port,
            error=str(e),
        )
        return None
    _servers.append(server.start())
    log.info(
        "metrics.server.listening", kind=kind, host=settings.worker_metrics_host, port=server.port
    )
    return server


def stop_process_metrics() -> None:
    while _servers:
        _servers.pop().stop()
