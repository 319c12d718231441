"""What a bench runs against: the whole node as production runs it (Redis, the Kustom and
commerce doubles, gunicorn from the Procfile's web line, Celery workers), or, for the
in-process benches, a throw-away Redis and an app served from a thread."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from harness.celery_worker import CeleryWorker
from harness.gunicorn import Gunicorn
from harness.redis_server import RedisServer, free_port
from playground.server import ServerThread


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A private, throw-away redis-server (no persistence: we measure latency, not AOF)."""
    with RedisServer(appendonly=False) as server:
        yield server


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 from a thread; yields its base URL."""
    with ServerThread(app) as server:
        yield server.url


def quiet_logs(level: int = logging.WARNING) -> None:
    """Per-request INFO logs would measure the terminal, not the code."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(level)


BENCH_APP_SPEC = "bench.app:create_app()"
COMMERCE_SECRET = "bench-commerce-secret"  # noqa: S105  (local benchmark only)
CALLBACK_SECRET = "bench-callback-secret"  # noqa: S105


@dataclass
class Stack:
    redis: RedisServer
    kustom: Any  # playground.kustom.KustomDoubleState
    kustom_url: str
    commerce: Any  # playground.commerce.CommerceDoubleState
    commerce_url: str
    web: Gunicorn
    workers: list[CeleryWorker]
    env: dict[str, str]
    work_dir: Path

    @property
    def url(self) -> str:
        return self.web.url

    def redis_client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis.url)

    def scrape(self, metric: str) -> dict[str, float]:
        """Samples of one metric from the web's ``/metrics`` (all processes of the node)."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(metric) and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples


def service_env(redis_url: str, kustom_url: str, commerce_url: str, web_url: str) -> dict[str, str]:
    """The environment of every process of the node (production defaults otherwise)."""
    return {
        "REDIS_URL": redis_url,
        "KUSTOM_API_URL": kustom_url,
        "KUSTOM_USERNAME": "playground",
        "KUSTOM_PASSWORD": "playground",
        "COMMERCE_API_URL": commerce_url,
        "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "PUBLIC_BASE_URL": web_url,
    }


@contextlib.contextmanager
def stack(
    *,
    workers: int = 1,
    worker_concurrency: int = 2,
    kustom_latency: float = 0.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Redis, the Kustom and commerce doubles (threads of this process), gunicorn serving
    `bench.app` like the Procfile, and ``workers`` Celery worker processes."""
    from playground.commerce import create_app as create_commerce_double
    from playground.kustom import create_app as create_kustom_double

    work_dir = Path(tempfile.mkdtemp(prefix="kustom-bench-"))
    metrics_dir = work_dir / "metrics"
    metrics_dir.mkdir()
    kustom_app = create_kustom_double(latency_seconds=kustom_latency)
    commerce_app = create_commerce_double(secret=COMMERCE_SECRET)
    port = free_port()
    with contextlib.ExitStack() as exits:
        exits.callback(shutil.rmtree, work_dir, ignore_errors=True)
        redis = exits.enter_context(RedisServer(appendonly=False))
        kustom_server = exits.enter_context(ServerThread(kustom_app, name="bench-kustom"))
        commerce_server = exits.enter_context(ServerThread(commerce_app, name="bench-commerce"))
        node_env = {
            **service_env(
                redis.url, kustom_server.url, commerce_server.url, f"http://127.0.0.1:{port}"
            ),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **(env or {}),
        }
        started = [
            CeleryWorker(node_env, name=f"bench{i + 1}", concurrency=worker_concurrency)
            for i in range(workers)
        ]
        web = Gunicorn(
            node_env, app_spec=BENCH_APP_SPEC, port=port, log_path=work_dir / "gunicorn.log"
        )
        # Start everything, then wait: the processes boot side by side.
        for worker in started:
            exits.callback(worker.stop)
        exits.enter_context(web)
        for worker in started:
            worker.start(timeout=60)
        yield Stack(
            redis=redis,
            kustom=kustom_app.extensions["kustom_double"],
            kustom_url=kustom_server.url,
            commerce=commerce_app.extensions["commerce_double"],
            commerce_url=commerce_server.url,
            web=web,
            workers=started,
            env=node_env,
            work_dir=work_dir,
        )


__all__ = [
    "BENCH_APP_SPEC",
    "CALLBACK_SECRET",
    "COMMERCE_SECRET",
    "Stack",
    "quiet_logs",
    "redis_server",
    "served",
    "service_env",
    "stack",
]
