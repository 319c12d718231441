"""Coalescing: Kustom order updates per burst of N renders of one cart, with a real worker.

    python -m bench coalescing [--sizes 10,50,200] [--bursts 3] [--latency 0.1]
                               [--concurrency 8]

The node runs as in production (gunicorn from the Procfile's web line, a real
redis-server, one Celery worker with concurrency 2); the Kustom double answers every call
after ``--latency`` seconds, like a real API would.

For each burst a fresh cart gets a Kustom order (checkout), then N renders with versions
2..N+1 (each a different quantity, so every one changes the payload) are posted in a
shuffled order by ``--concurrency`` threads, as fast as the web takes them. The burst is
done when the cart's status shows Kustom's order on the highest version (``syncing``
false); after a short settle the ``update_order`` calls the double received for that
order are counted, and the last one must carry the highest version's payload.

Baseline: N calls, one per render, which is what a sync without coalescing would cost.
Target: at most 2 calls per burst, whatever N.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench.carts import cart_render, open_checkout, post_render
from bench.figures import Figure, figures_table, markdown_table
from bench.history import save_run
from bench.machine import machine_info, machine_line
from bench.node import stack
from harness.waiting import wait_until

TARGET_CALLS = 2


def expected_payload(render: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from kustom_app.payload import build_order_payload, payload_hash
    from kustom_app.render import load_render

    payload = build_order_payload(load_render(render))
    return payload_hash(payload), payload


def status(session: requests.Session, url: str, cart_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = session.get(f"{url}/carts/{cart_id}/kustom/status", timeout=10).json()
    return answer


def burst(node: Any, size: int, index: int, concurrency: int) -> dict[str, Any]:
    """One burst of ``size`` renders of a fresh cart; what Kustom saw of it."""
    session = requests.Session()
    cart_id = f"burst-{size}-{index}-{random.randrange(1 << 30):08x}"
    post_render(session, node.url, cart_render(cart_id, 1, 1))
    order_id = open_checkout(session, node.url, cart_id)
    wait_until(lambda: not status(session, node.url, cart_id)["syncing"], timeout=30, interval=0.02)
    before = len(node.kustom.calls("update_order", order_id=order_id))

    renders = [cart_render(cart_id, v, quantity=v) for v in range(2, size + 2)]
    final_hash, final_payload = expected_payload(renders[-1])
    random.shuffle(renders)
    sessions = [requests.Session() for _ in range(concurrency)]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(
            pool.map(
                lambda item: post_render(sessions[item[0] % concurrency], node.url, item[1]),
                enumerate(renders),
            )
        )
    posted = time.perf_counter()
    wait_until(
        lambda: (
            (s := status(session, node.url, cart_id))["syncHash"] == final_hash and not s["syncing"]
        ),
        timeout=60,
        interval=0.005,
    )
    synced = time.perf_counter()
    time.sleep(0.5)  # a stray late push would show up here
    updates = node.kustom.calls("update_order", order_id=order_id)[before:]
    landed = [call for call in updates if call["status"] == 200]
    last = landed[-1]["json"] if landed else {}
    if last.get("order_amount") != final_payload["order_amount"]:
        raise RuntimeError(f"{cart_id}: Kustom's last update is not the newest payload")
    amounts = [call["json"]["order_amount"] for call in landed]
    if amounts != sorted(amounts):
        raise RuntimeError(f"{cart_id}: updates went backwards: {amounts}")
    return {
        "size": size,
        "calls": len(updates),
        "burst_ms": (posted - started) * 1000,
        "synced_after_ms": (synced - started) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench coalescing")
    parser.add_argument("--sizes", default="10,50,200", help="renders per burst")
    parser.add_argument("--bursts", type=int, default=3, help="bursts per size")
    parser.add_argument("--latency", type=float, default=0.1, help="Kustom double latency, s")
    parser.add_argument("--concurrency", type=int, default=8, help="threads posting a burst")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]

    machine = machine_info()
    print(f"## coalescing: Kustom updates per burst of N renders\n\n{machine_line(machine)}")
    print(
        f"gunicorn as the Procfile's web line, 1 Celery worker (concurrency 2), Kustom double "
        f"latency {args.latency * 1000:.0f} ms, bursts posted by {args.concurrency} threads"
    )
    results: list[dict[str, Any]] = []
    with stack(workers=1, kustom_latency=args.latency) as node:
        for size in sizes:
            for index in range(args.bursts):
                results.append(burst(node, size, index, args.concurrency))

    rows, figures = [], []
    for size in sizes:
        mine = [r for r in results if r["size"] == size]
        calls = [r["calls"] for r in mine]
        rows.append(
            [
                size,
                len(mine),
                f"{statistics.fmean(calls):.2f}",
                max(calls),
                f"{statistics.fmean(r['burst_ms'] for r in mine):.0f}",
                f"{statistics.fmean(r['synced_after_ms'] for r in mine):.0f}",
            ]
        )
        figures.append(
            Figure(
                f"Kustom updates per burst of {size}",
                statistics.fmean(calls),
                "calls",
                baseline=size,
                ratio=statistics.fmean(calls) / size,
                target=f"<= {TARGET_CALLS} per burst",
                ok=max(calls) <= TARGET_CALLS,
                note=f"max {max(calls)}",
            )
        )
    print()
    print(
        markdown_table(
            ["renders (N)", "bursts", "updates mean", "updates max", "burst ms", "synced at ms"],
            rows,
        )
    )
    print("\nburst ms: time to post the N renders; synced at: until syncing false (from start).")
    print()
    print(figures_table(figures))
    save_run(
        "coalescing",
        figures=figures,
        rows=[
            {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in results
        ],
        machine=machine,
        meta={
            "kustom_latency_ms": args.latency * 1000,
            "concurrency": args.concurrency,
            "server": "gunicorn, Procfile web line (gthread)",
            "worker": "1 Celery worker, concurrency 2",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
