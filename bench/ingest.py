"""Cart-event ingest: ``POST /commerce/cart-mutation`` under concurrent load, beside a bare
JSON endpoint served by the same gunicorn.

    python -m bench ingest [--carts 200] [--duration 6] [--rounds 5] [--connections 32]
                           [--no-worker] [--shared-only] [--profile] [--loadgen wrk|python]

The node runs as in production: gunicorn from the Procfile's web line (gthread, its
workers and threads, gunicorn.conf.py), serving ``bench.app`` (the production app plus
``POST /_bench/bare``), a real redis-server, one Celery worker (concurrency 2, pushing to
the Kustom double) and the doubles as threads of this process.

Every cart starts with a Kustom order, so each render is the full hot path: signature,
JSON + schema, payload build + hash, the record_render Lua script, and the sync job
enqueued (or coalesced into the one already queued). Each request carries a new version
of one of ``--carts`` carts with a different quantity, signed like the commerce backend
signs (requests are prepared before the run: the load generator only replays bytes).

Rows, measured in ``--rounds`` rounds with the same connections and the same bodies; a
round is the baseline, then each measured row right after it:

* ``bare``: ``POST /_bench/bare`` (reads the body, answers 202 JSON): the baseline;
* ``cart-mutation``: the measured endpoint, renders of the ``--carts`` carts (most are
  coalesced into a job already queued);
* ``cart-mutation, fresh carts`` (unless ``--no-fresh``): one render per cart, each cart
  with an order and nothing queued, so every render queues a sync job.

A row's ratio is the median over the rounds of its rate ÷ the bare rate of the same round:
a shared machine's speed drifts from minute to minute, so each run is compared with the
baseline measured seconds before it, and one round at a busy moment moves the median
little. The per-round ratios are printed beside each run, their range in the figure's note.

Each in two CPU placements (`bench.machine.Placement`), the same for the baseline and the
measured row:

* ``split`` (the target): gunicorn on half of the cores, everything else (Redis, the
  worker, the doubles, the load generator) on the other half: the web tier's throughput,
  as when it runs on machines of its own;
* ``shared``: everything on every core: one machine running the whole node, where each
  cart event's Kustom push (worker + Kustom double) competes with ingest for the cores.

Load: ``wrk`` (installed with apt-get when missing and we are root), closed loop with
``--connections`` keep-alive connections (default 32 = the Procfile's 2 workers x 16
threads); else a Python load generator (two processes of threads).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.app import BARE_PATH
from bench.carts import cart_render, open_checkout, post_render, render_body, signed_headers
from bench.figures import Figure, figures_table, markdown_table
from bench.history import RESULTS_DIR, save_run
from bench.loadgen import (
    WRK_SCRIPT,
    LoadResult,
    ensure_wrk,
    run_python_load,
    run_wrk,
    write_slices,
)
from bench.machine import CpuMeter, Placement, machine_info, machine_line, node_cpu_groups
from bench.node import stack
from bench.profiling import Profiler, profile_table
from workers.celery_app import SYNC_QUEUE

MUTATION_PATH = "/commerce/cart-mutation"
TARGET_RATIO = 0.5
CPU_GROUPS = ("web", "redis", "worker", "doubles")
BARE, MUTATION, FRESH = "bare", "cart-mutation", "cart-mutation, fresh carts"


# -- requests, prepared before the run -----------------------------------------------------------


class RequestStream:
    """Renders of ``carts`` carts with ever newer versions, split over load-generator
    threads so that one cart's renders stay in one thread, in version order."""

    def __init__(self, cart_ids: list[str], host: str, first_version: int = 2) -> None:
        self.cart_ids = cart_ids
        self.host = host
        self.next_version = dict.fromkeys(cart_ids, first_version)

    def take(self, count: int, path: str, slices: int) -> list[list[bytes]]:
        """``count`` raw HTTP requests to ``path``, dealt round-robin into ``slices``."""
        out: list[list[bytes]] = [[] for _ in range(slices)]
        for k in range(count):
            cart_id = self.cart_ids[k % len(self.cart_ids)]
            version = self.next_version[cart_id]
            self.next_version[cart_id] = version + 1
            # Consecutive versions always differ in content: every render changes the hash.
            body = render_body(cart_render(cart_id, version, quantity=2 + version % 9))
            headers = signed_headers(body)
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\n"
                f"X-Commerce-Signature: {headers['X-Commerce-Signature']}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            out[(k % len(self.cart_ids)) % slices].append(head + body)
        return out


# -- the benchmark --------------------------------------------------------------------------------


def _outcomes(node: Any, metric: str, operation: str | None = None) -> dict[str, float]:
    """A counter's samples by their ``outcome`` label (only ``operation``'s, if given)."""
    return {
        name.split('outcome="')[1].split('"')[0]: value
        for name, value in node.scrape(metric).items()
        if operation is None or f'operation="{operation}"' in name
    }


def _counted(node: Any) -> tuple[dict[str, float], dict[str, float]]:
    """Cart events by outcome, and the worker's Kustom order updates by outcome."""
    return (
        _outcomes(node, "kustom_cart_events_total"),
        _outcomes(node, "kustom_api_calls_total", "update_order"),
    )


def _since(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    grown = {k: int(v - before.get(k, 0)) for k, v in after.items()}
    return {k: v for k, v in grown.items() if v}


# Only the double's creation checks look at these: sync jobs never send merchant_urls.
MERCHANT_URLS = {
    "terms": "http://127.0.0.1/terms",
    "checkout": "http://127.0.0.1/checkout",
    "confirmation": "http://127.0.0.1/confirmation",
    "push": "http://127.0.0.1/kustom/push",
}


def _fresh_carts(node: Any, count: int, *, first: int = 0) -> list[str]:
    """``count`` carts that each have a Kustom order and nothing queued, written straight to
    Redis (a render, then the order as checkout records it): their next render enqueues.

    Each order is created in the Kustom double (in this process, not over HTTP), so the
    worker's sync jobs update real orders, as in a shop.
    """
    from kustom_app.render import load_render
    from kustom_app.services import Services
    from kustom_app.settings import Settings
    from kustom_app.sync import prepare_render

    store = Services(Settings(), node.redis_client()).store
    prepared = prepare_render(load_render(cart_render("fresh", 1, 1)))
    cart_ids = [f"fresh-{i:06d}" for i in range(first, first + count)]

    def setup(chunk: list[str]) -> None:
        for cart_id in chunk:
            render = {**prepared.render, "cartId": cart_id}
            payload = {**(prepared.payload or {}), "merchant_reference1": cart_id}
            order_id = node.kustom.create_order({**payload, "merchant_urls": MERCHANT_URLS})[
                "order_id"
            ]
            store.record_render(cart_id, 1, render, prepared.hash, payload)
            store.record_order(cart_id, order_id, prepared.hash, payload)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(setup, [cart_ids[i::4] for i in range(4)]))
    return cart_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--carts", type=int, default=200)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds: bare, then each row")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="load-generator threads")
    parser.add_argument("--no-worker", action="store_true", help="no Celery worker running")
    parser.add_argument(
        "--no-fresh", action="store_true", help="skip the every-render-enqueues row"
    )
    parser.add_argument(
        "--shared-only", action="store_true", help="skip the split-placement (web tier) rows"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy an extra mutation run")
    parser.add_argument("--loadgen", choices=("wrk", "python"), default=None)
    args = parser.parse_args(argv)

    wrk = None if args.loadgen == "python" else ensure_wrk()
    if args.loadgen == "wrk" and wrk is None:
        print("wrk is not available")
        return 2
    loadgen = "wrk" if wrk else "python"
    machine = machine_info()
    print(f"## ingest: POST {MUTATION_PATH} vs POST {BARE_PATH}\n\n{machine_line(machine)}")
    print(
        f"gunicorn as the Procfile's web line; load generator: {loadgen}, "
        f"{args.connections} connections, {args.duration:.0f} s per run"
    )

    placements = ["split", "shared"] if not args.shared_only else ["shared"]
    results: dict[tuple[str, str], list[LoadResult]] = {}
    profile: list[tuple[str, float, float]] = []
    worker_profile: list[tuple[str, float, float]] = []
    with stack(workers=0 if args.no_worker else 1) as node:
        host = node.url.removeprefix("http://")
        script = node.work_dir / "replay.lua"
        script.write_text(WRK_SCRIPT)
        session = requests.Session()
        cart_ids = [f"ingest-{i:04d}" for i in range(args.carts)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: post_render(session, node.url, cart_render(c, 1, 1)), cart_ids))
            list(pool.map(lambda c: open_checkout(session, node.url, c), cart_ids))
        meter = CpuMeter(node_cpu_groups(node))
        placement = Placement(node)
        if not placement.can_split:
            placements = ["shared"]
        for name in placements:
            print(f"placement {name}: {placement.describe(name)}")

        def load(path: str, raw: list[list[bytes]], seconds: float) -> LoadResult:
            prefix = node.work_dir / f"requests-{time.monotonic_ns()}"
            before = _counted(node) if path == MUTATION_PATH else ({}, {})
            if wrk:
                write_slices(prefix, raw)
                try:
                    meter.start()
                    result = run_wrk(
                        wrk,
                        node.url + path,
                        prefix,
                        script,
                        threads=len(raw),
                        connections=args.connections,
                        seconds=seconds,
                    )
                finally:
                    for index in range(len(raw)):
                        Path(f"{prefix}.{index}").unlink(missing_ok=True)
            else:
                meter.start()
                result = run_python_load(
                    node.url + path, raw, connections=args.connections, seconds=seconds
                )
            result.cpu = meter.stop()
            if path == MUTATION_PATH:
                events, updates = _counted(node)
                result.events, result.updates = (
                    _since(events, before[0]),
                    _since(updates, before[1]),
                )
            return result

        queues = node.redis_client()

        def drain() -> float:
            """Wait until the worker has run every queued sync job (seconds waited), so
            that no run starts with the last one's backlog running beside it."""
            started = time.monotonic()
            while time.monotonic() - started < 120:
                if not queues.llen(SYNC_QUEUE) and not queues.hlen("unacked"):
                    break
                time.sleep(0.1)
            return time.monotonic() - started

        def measure(row: str, where: str, raw: list[list[bytes]]) -> None:
            placement.apply(where)
            path = BARE_PATH if row == BARE else MUTATION_PATH
            result = load(path, raw, args.duration)
            result.backlog_s = drain()
            results.setdefault((row, where), []).append(result)

        # Warm-up, not reported: carts without orders, then the bare endpoint.
        warm = RequestStream([f"warm-{i}" for i in range(50)], host)
        load(MUTATION_PATH, warm.take(4000, MUTATION_PATH, args.threads), 2)
        first = load(BARE_PATH, warm.take(4000, BARE_PATH, args.threads), 2)
        # Enough distinct renders that no run repeats one (bare is the upper bound).
        capacity = int(max(first.rate * 2, 3000) * args.duration)

        stream = RequestStream(cart_ids, host)
        bare_body = RequestStream(cart_ids, host)
        fresh_made = 0
        for _ in range(args.rounds):
            for where in placements:
                # A round: the baseline, then each measured row right after it, so every
                # ratio compares runs seconds apart (the machine's speed drifts over minutes).
                measure(BARE, where, bare_body.take(capacity, BARE_PATH, args.threads))
                measure(MUTATION, where, stream.take(capacity, MUTATION_PATH, args.threads))
                if args.no_fresh:
                    continue
                # One render per cart, each cart with an order and no job queued: every
                # render takes the enqueue path (a busy shop: renders seconds apart, syncs
                # done between). Carts made just before the run, never reused.
                fastest = max(r.rate for r in results[(MUTATION, where)])
                per_run = int(fastest * args.duration * 1.4)
                ids = _fresh_carts(node, per_run, first=fresh_made)
                fresh_made += per_run
                part = RequestStream(ids, host)
                measure(FRESH, where, part.take(len(ids), MUTATION_PATH, args.threads))

        if args.profile:
            placement.apply(placements[0])  # the web tier on its own cores when possible
            groups = node_cpu_groups(node)
            web_profiler = Profiler(node.web.worker_pids(), node.work_dir / "profile-web")
            worker_profiler = Profiler(groups["worker"](), node.work_dir / "profile-worker")
            raw = stream.take(capacity, MUTATION_PATH, args.threads)
            for profiler in (web_profiler, worker_profiler):
                profiler.start(args.duration)
            load(MUTATION_PATH, raw, args.duration)
            for profiler in (web_profiler, worker_profiler):
                profiler.stop()
            profile = web_profiler.summary(top=60)
            worker_profile = worker_profiler.summary(top=60)
            for name, profiler in (("web", web_profiler), ("worker", worker_profiler)):
                profiler.keep(RESULTS_DIR / f"ingest-profile-{name}")
        placement.apply("shared")

    rows = []
    detail = []
    for (name, where), runs in results.items():
        paired = _paired_ratios(runs, results[(BARE, where)])
        for index, run in enumerate(runs, 1):
            rows.append(
                [
                    name,
                    where,
                    index,
                    f"{run.requests:,}",
                    f"{run.rate:,.0f}",
                    "" if name == BARE else f"{paired[index - 1]:.2f}",
                    f"{run.p50_ms:.2f}",
                    f"{run.p99_ms:.2f}",
                    f"{run.mean_ms:.2f}",
                    *(f"{run.cpu_ms_per_request(g):.2f}" for g in CPU_GROUPS),
                    _share(run.events, "enqueued"),
                    _updates(run),
                    f"{run.backlog_s:.1f}",
                    run.errors,
                ]
            )
            detail.append(
                {
                    "name": name,
                    "placement": where,
                    "round": index,
                    "requests": run.requests,
                    "seconds": round(run.seconds, 3),
                    "req_per_s": round(run.rate, 1),
                    "ratio_to_bare_of_round": None if name == BARE else round(paired[index - 1], 3),
                    "p50_ms": round(run.p50_ms, 3),
                    "p99_ms": round(run.p99_ms, 3),
                    "mean_ms": round(run.mean_ms, 3),
                    "errors": run.errors,
                    "repeated_requests": run.wrapped,
                    "cpu_ms_per_request": {
                        g: round(run.cpu_ms_per_request(g), 3) for g in CPU_GROUPS
                    },
                    "cart_events": run.events,
                    "kustom_updates": run.updates,
                    "backlog_seconds": round(run.backlog_s, 2),
                }
            )

    errors = sum(r.errors for runs in results.values() for r in runs)
    wrapped = any(r.wrapped for runs in results.values() for r in runs)
    figures = []
    for where in placements:
        figures += _figures(results, where, args.carts, errors=errors)
    print()
    headers = [
        "endpoint", "placement", "round", "requests", "req/s", "÷ bare", "p50 ms", "p99 ms",
        "mean ms",
        *(f"{g} CPU ms/req" for g in CPU_GROUPS), "enqueued", "Kustom updates", "backlog s",
        "errors",
    ]  # fmt: skip
    print(markdown_table(headers, rows))
    print(
        "\n÷ bare: req/s over the bare run of the same round and placement, measured just "
        "before. CPU ms/req: CPU time of each group of processes during the run / requests "
        "(web = gunicorn, doubles = this process). enqueued: share of renders that queued a "
        "sync job (the rest coalesced into a queued one, or equalled Kustom's order). "
        "Kustom updates: the worker's order updates during the run, per cart event. "
        "backlog s: how long the worker then took to run the sync jobs still queued (the "
        "next run starts after that)."
    )
    if wrapped:
        print("WARNING: the load generator ran out of prepared renders and repeated some")
    print()
    print(figures_table(figures))
    if profile:
        print(
            f"\nprofile (py-spy --gil) of the gunicorn workers, extra mutation run ({loadgen}):\n"
        )
        print(profile_table([row for row in profile if not _framework_frame(row[0])][:30]))
    if worker_profile:
        print("\nprofile (py-spy --gil) of the Celery worker processes, same run:\n")
        print(profile_table(worker_profile[:40]))
    save_run(
        "ingest",
        figures=figures,
        rows=detail,
        machine=machine,
        meta={
            "server": "gunicorn, Procfile web line (gthread)",
            "loadgen": loadgen,
            "connections": args.connections,
            "carts": args.carts,
            "worker": not args.no_worker,
            "profile": _profile_rows(profile),
            "worker_profile": _profile_rows(worker_profile),
        },
    )
    return 0 if not errors else 1


def _paired_ratios(runs: list[LoadResult], bare: list[LoadResult]) -> list[float]:
    """Each run's rate over the rate of the bare run of its own round (measured just
    before it on the same cores), in round order."""
    return [run.rate / base.rate for run, base in zip(runs, bare, strict=False) if base.rate]


def _mean_of(runs: list[LoadResult], attr: str) -> float:
    return statistics.fmean(getattr(r, attr) for r in runs)


def _figures(
    results: dict[tuple[str, str], list[LoadResult]], where: str, carts: int, *, errors: int
) -> list[Figure]:
    """The summary figures of one placement. The target is judged on ``split``: the web
    tier's own throughput against the bare endpoint on the same cores. ``shared`` (the
    whole node on one machine) also pays for every Kustom push on those cores, and is
    reported for what it is."""
    bare, mutation = results[(BARE, where)], results[(MUTATION, where)]
    label = "web tier" if where == "split" else "whole node"
    target = f">= {TARGET_RATIO} x bare" if where == "split" else ""

    def rate_figure(name: str, runs: list[LoadResult]) -> Figure:
        # The median of paired rounds: one round on a busier moment of a shared machine
        # moves the figure as little as possible, in either direction.
        ratios = _paired_ratios(runs, bare)
        ratio = statistics.median(ratios)
        note = (
            f"median of {len(ratios)} rounds (each against its own bare run): "
            f"{min(ratios):.2f}-{max(ratios):.2f}"
            if len(ratios) > 1
            else "one round"
        )
        return Figure(
            f"{name} req/s, {label}",
            statistics.median(r.rate for r in runs),
            "req/s",
            baseline=statistics.median(r.rate for r in bare[: len(runs)]),
            ratio=ratio,
            target=target,
            ok=(ratio >= TARGET_RATIO and not errors) if target else None,
            note=note,
        )

    p50, p99 = _mean_of(mutation, "p50_ms"), _mean_of(mutation, "p99_ms")
    bare_p50, bare_p99 = _mean_of(bare, "p50_ms"), _mean_of(bare, "p99_ms")
    figures = [
        rate_figure(f"cart-mutation ({carts} carts)", mutation),
        Figure(f"cart-mutation p50, {label}", p50, "ms", baseline=bare_p50, ratio=p50 / bare_p50),
        Figure(f"cart-mutation p99, {label}", p99, "ms", baseline=bare_p99, ratio=p99 / bare_p99),
    ]
    if (FRESH, where) in results:
        figures.append(rate_figure("cart-mutation, every render enqueues", results[(FRESH, where)]))
    return figures


def _profile_rows(rows: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
    return [
        {"function": name, "inclusive_pct": round(inclusive, 1), "self_pct": round(own, 1)}
        for name, inclusive, own in rows
    ]


def _updates(run: LoadResult) -> str:
    """Kustom order updates the worker made during the run, per cart event, and how many
    Kustom refused (a refused update would make the worker look cheaper than it is)."""
    if not run.updates or not run.requests:
        return ""
    refused = sum(v for k, v in run.updates.items() if k != "2xx")
    return f"{sum(run.updates.values()) / run.requests:.2f}/event" + (
        f", {refused} refused" if refused else ""
    )


def _share(events: dict[str, int], outcome: str) -> str:
    total = sum(events.values())
    return f"{100 * events.get(outcome, 0) / total:.0f} %" if total else ""


_FRAMEWORK = ("threading.py", "futures/thread.py", "workers/gthread.py", "flask/app.py")


def _framework_frame(name: str) -> bool:
    return any(name.endswith(f"({where})") for where in _FRAMEWORK)


if __name__ == "__main__":
    sys.exit(main())
