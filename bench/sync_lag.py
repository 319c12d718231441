"""Sync lag: render posted → Kustom's order updated → ``syncing`` false, beside the Kustom
call itself.

    python -m bench sync_lag [--latencies 50,200] [--samples 100] [--carts 20]

The node runs as in production (gunicorn from the Procfile's web line, a real
redis-server, one Celery worker with concurrency 2). The Kustom double answers every call
after a set latency L.

Each sample posts one render with a new quantity for one of ``--carts`` carts that have a
Kustom order, one sample at a time (no coalescing), and times it from just before the POST
to the moment the cart's hashes agree again on the new payload: this process listens on
the cart's Redis events channel, the one the storefront's event stream follows, and reads
the hashes on every event. The double's call log splits each sample into

* ``POST answered``: the web stored the render and queued the sync job;
* ``update sent``: ... the worker picked the job up, took the lease and sent the
  update (until the double starts handling it);
* ``after Kustom's L``: from the double's start plus L to the event: the double's own
  handling, the answer back to the worker, ``finish_sync``, the event.

Baseline rows: L itself, and the same update sent straight from this process to the
double (one HTTP call, no service in between). Target: p99 below L + 50 ms.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import requests

from bench.carts import cart_render, open_checkout, post_render
from bench.figures import Figure, figures_table, markdown_table
from bench.history import save_run
from bench.latency import percentile
from bench.machine import machine_info, machine_line
from bench.node import stack
from harness.waiting import wait_until

TARGET_MARGIN_MS = 50.0


class SyncWatcher:
    """Follows ``kustom:events:*`` and notes when each cart's hashes agree, on which hash."""

    def __init__(self, client: Any, prefix: str = "kustom") -> None:
        self.client = client
        self.prefix = prefix
        self.synced: dict[str, list[tuple[float, str]]] = {}  # cart -> [(at, hash)]
        self.cond = threading.Condition()
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(f"{prefix}:events:*")
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sync-watcher", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message or message.get("type") != "pmessage":
                continue
            at = time.time()
            cart_id = message["data"].decode()
            pending, synced = self.client.hmget(
                f"{self.prefix}:cart:{cart_id}", "pending_hash", "sync_hash"
            )
            if pending and pending == synced:
                with self.cond:
                    self.synced.setdefault(cart_id, []).append((at, synced.decode()))
                    self.cond.notify_all()

    def wait(self, cart_id: str, payload_hash: str, since: float, timeout: float = 30.0) -> float:
        """When the cart was first in sync on ``payload_hash`` after ``since`` (epoch s)."""

        def found() -> float | None:
            for at, synced in self.synced.get(cart_id, ()):
                if at >= since and synced == payload_hash:
                    return at
            return None

        with self.cond:
            at = self.cond.wait_for(found, timeout=timeout)
        if at is None:
            raise TimeoutError(f"{cart_id} did not sync {payload_hash} within {timeout}s")
        return at

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.pubsub.close()


def _summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return percentile(ordered, 50), percentile(ordered, 99), max(ordered)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sync_lag")
    parser.add_argument("--latencies", default="50,200", help="Kustom double latencies, ms")
    parser.add_argument("--samples", type=int, default=100, help="samples per latency")
    parser.add_argument("--carts", type=int, default=20)
    parser.add_argument("--direct", type=int, default=20, help="direct Kustom calls per L")
    args = parser.parse_args(argv)
    latencies = [float(x) for x in args.latencies.split(",")]

    machine = machine_info()
    print(f"## sync lag: render posted → Kustom updated → syncing false\n\n{machine_line(machine)}")
    print(
        "gunicorn as the Procfile's web line, 1 Celery worker (concurrency 2), "
        f"{args.samples} sequential samples per L over {args.carts} carts"
    )
    rows: list[list[Any]] = []
    detail: list[dict[str, Any]] = []
    figures: list[Figure] = []
    with stack(workers=1) as node:
        from kustom_app.payload import build_order_payload
        from kustom_app.render import load_render
        from kustom_app.services import Services
        from kustom_app.settings import Settings

        session = requests.Session()
        carts = [f"lag-{i:03d}" for i in range(args.carts)]
        orders = {}
        for cart_id in carts:
            post_render(session, node.url, cart_render(cart_id, 1, 1))
            orders[cart_id] = open_checkout(session, node.url, cart_id)
        watcher = SyncWatcher(node.redis_client())
        direct_client = Services(
            Settings(
                kustom_api_url=node.kustom_url,
                kustom_username="playground",
                kustom_password="playground",  # noqa: S106 (the local double's)
            )
        ).kustom
        version = 1
        try:
            for latency_ms in latencies:
                node.kustom.set_latency(latency_ms / 1000)
                # The update straight from here: the floor for one Kustom round trip.
                direct = []
                payload = build_order_payload(load_render(cart_render(carts[0], 1, 1)))
                for _ in range(args.direct):
                    started = time.perf_counter()
                    direct_client.update_order(orders[carts[0]], payload)
                    direct.append((time.perf_counter() - started) * 1000)
                lags, posted, to_kustom, after = [], [], [], []
                for sample in range(args.samples + 2):  # the first two warm up
                    cart_id = carts[sample % len(carts)]
                    version += 1
                    render = cart_render(cart_id, version, quantity=2 + version % 7)
                    before = len(node.kustom.calls("update_order", order_id=orders[cart_id]))
                    started = time.time()
                    answer = post_render(session, node.url, render)
                    answered = time.time()
                    if not answer["syncing"]:
                        raise RuntimeError(f"{cart_id}: render did not start a sync: {answer}")
                    done = watcher.wait(cart_id, answer["pendingHash"], started)
                    calls = wait_until(
                        lambda c=cart_id, b=before: node.kustom.calls(
                            "update_order", order_id=orders[c]
                        )[b:],
                        timeout=5,
                        interval=0.02,
                    )
                    if sample < 2:
                        continue
                    lags.append((done - started) * 1000)
                    posted.append((answered - started) * 1000)
                    to_kustom.append((calls[0]["at"] - started) * 1000)
                    after.append((done - calls[-1]["at"]) * 1000 - latency_ms)
                    time.sleep(0.01)
                p50, p99, worst = _summary(lags)
                d50, d99, dmax = _summary(direct)
                k50, k99, kmax = _summary(to_kustom)
                w50, w99, wmax = _summary(posted)
                a50, a99, amax = _summary(after)
                rows += [
                    [f"L = {latency_ms:.0f} ms (baseline)", "", f"{latency_ms:.1f}", "", ""],
                    [
                        f"Kustom update sent directly, L = {latency_ms:.0f}",
                        args.direct,
                        f"{d50:.1f}",
                        f"{d99:.1f}",
                        f"{dmax:.1f}",
                    ],
                    [
                        f"**render → syncing false, L = {latency_ms:.0f}**",
                        len(lags),
                        f"{p50:.1f}",
                        f"{p99:.1f}",
                        f"{worst:.1f}",
                    ],
                    ["… POST answered", len(lags), f"{w50:.1f}", f"{w99:.1f}", f"{wmax:.1f}"],
                    ["… update sent", len(lags), f"{k50:.1f}", f"{k99:.1f}", f"{kmax:.1f}"],
                    ["… after Kustom's L", len(lags), f"{a50:.1f}", f"{a99:.1f}", f"{amax:.1f}"],
                ]  # fmt: skip
                detail.append(
                    {
                        "latency_ms": latency_ms,
                        "samples": len(lags),
                        "lag_p50_ms": round(p50, 2),
                        "lag_p99_ms": round(p99, 2),
                        "lag_max_ms": round(worst, 2),
                        "direct_p50_ms": round(d50, 2),
                        "direct_p99_ms": round(d99, 2),
                        "posted_p50_ms": round(w50, 2),
                        "posted_p99_ms": round(w99, 2),
                        "to_kustom_p50_ms": round(k50, 2),
                        "to_kustom_p99_ms": round(k99, 2),
                        "after_kustom_p50_ms": round(a50, 2),
                        "after_kustom_p99_ms": round(a99, 2),
                    }
                )
                figures += [
                    Figure(
                        f"sync lag p50, Kustom L = {latency_ms:.0f} ms",
                        p50,
                        "ms",
                        baseline=latency_ms,
                        ratio=p50 / latency_ms,
                    ),
                    Figure(
                        f"sync lag p99, Kustom L = {latency_ms:.0f} ms",
                        p99,
                        "ms",
                        baseline=latency_ms,
                        ratio=p99 / latency_ms,
                        target=f"< L + {TARGET_MARGIN_MS:.0f} ms",
                        ok=p99 < latency_ms + TARGET_MARGIN_MS,
                    ),
                ]
        finally:
            watcher.close()

    print()
    print(markdown_table(["row", "samples", "p50 ms", "p99 ms", "max ms"], rows))
    print()
    print(figures_table(figures))
    save_run(
        "sync_lag",
        figures=figures,
        rows=detail,
        machine=machine,
        meta={
            "server": "gunicorn, Procfile web line (gthread)",
            "worker": "1 Celery worker, concurrency 2",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
