"""Confirm/push race throughput: carts completed per second when the browser's confirm and
Kustom's push race, beside the same carts completed without a race.

    python -m bench race [--carts 100] [--confirms 3] [--pushes 3] [--concurrency 16]

The node runs as in production (gunicorn from the Procfile's web line, a real
redis-server, one Celery worker with concurrency 2, production tunables); the Kustom and
commerce doubles answer at once. Every cart is paid for at the Kustom double before its
row starts (checkout, then the shopper completes the order; no push is sent by the double).

Rows, each over ``--carts`` carts, calls shuffled and fired by ``--concurrency`` threads:

* ``uncontested`` (the baseline): one confirm per cart. The least work that completes a
  cart: Kustom's order read, the claim, the shop order, the record, the ack queued.
* ``race``: ``--confirms`` confirms and ``--pushes`` pushes per cart, all at once. Done when
  every call has answered and the commerce double holds the cart's order; exactly one shop
  order per cart is checked, and every Kustom order must end acknowledged.
* ``repeat confirms, completed carts``: the same number of calls as the race, all
  confirms of the (now completed) race carts: what the race's call volume costs when there
  is nothing left to do (HTTP + one Redis read each).

completions/s = carts / time from the first call until the last cart is complete.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench.carts import cart_render, open_checkout, post_render
from bench.figures import Figure, figures_table, markdown_table
from bench.history import save_run
from bench.machine import machine_info, machine_line
from bench.node import CALLBACK_SECRET, stack
from harness.waiting import wait_until


def paid_carts(node: Any, prefix: str, count: int) -> list[tuple[str, str]]:
    """``count`` carts whose Kustom order the shopper has paid for: (cart id, order id)."""
    session = requests.Session()

    def one(index: int) -> tuple[str, str]:
        cart_id = f"{prefix}-{index:04d}"
        render = cart_render(cart_id, 1, quantity=1 + index % 4)
        node.commerce.put_cart(render)
        post_render(session, node.url, render)
        order_id = open_checkout(session, node.url, cart_id)
        node.kustom.complete_order(order_id)
        return cart_id, order_id

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def fire(node: Any, calls: list[tuple[str, str, str]], concurrency: int) -> tuple[float, list]:
    """Fire ``(kind, cart, order)`` calls from ``concurrency`` threads; (seconds, answers)."""
    from kustom_app.signing import callback_token

    sessions = [requests.Session() for _ in range(concurrency)]

    def call(item: tuple[int, tuple[str, str, str]]) -> tuple[str, str, int]:
        index, (kind, cart_id, order_id) = item
        session = sessions[index % concurrency]
        if kind == "confirm":
            response = session.post(f"{node.url}/carts/{cart_id}/kustom/confirm", timeout=30)
        else:
            response = session.post(
                f"{node.url}/kustom/push",
                params={
                    "order_id": order_id,
                    "cart": cart_id,
                    "token": callback_token(CALLBACK_SECRET, cart_id),
                },
                timeout=30,
            )
        return kind, cart_id, response.status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(call, enumerate(calls)))
    return started, answers


def completed(node: Any, carts: list[tuple[str, str]]) -> bool:
    return all(node.commerce.orders_for(cart_id) for cart_id, _ in carts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench race")
    parser.add_argument("--carts", type=int, default=100)
    parser.add_argument("--confirms", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    per_cart = args.confirms + args.pushes

    machine = machine_info()
    print(f"## race: confirm/push completions per second\n\n{machine_line(machine)}")
    print(
        "gunicorn as the Procfile's web line, 1 Celery worker (concurrency 2), "
        f"{args.carts} carts per row, {args.concurrency} client threads"
    )
    rows: list[dict[str, Any]] = []
    with stack(workers=1) as node:
        plain = paid_carts(node, "plain", args.carts)
        racing = paid_carts(node, "race", args.carts)

        # Baseline: one confirm per cart.
        calls = [("confirm", cart_id, order_id) for cart_id, order_id in plain]
        random.shuffle(calls)
        started, answers = fire(node, calls, args.concurrency)
        elapsed = time.perf_counter() - started
        if {status for *_, status in answers} != {200} or not completed(node, plain):
            raise RuntimeError(f"uncontested confirms did not all complete: {answers[:5]}")
        rows.append({"name": "uncontested (1 confirm)", "calls": len(calls), "seconds": elapsed})

        # The race.
        calls = [
            (kind, cart_id, order_id)
            for cart_id, order_id in racing
            for kind in ["confirm"] * args.confirms + ["push"] * args.pushes
        ]
        random.shuffle(calls)
        started, answers = fire(node, calls, args.concurrency)
        wait_until(lambda: completed(node, racing), timeout=60, interval=0.005)
        elapsed = time.perf_counter() - started
        statuses = {(kind, status) for kind, _, status in answers}
        if not {s for k, s in statuses if k == "push"} <= {200}:
            raise RuntimeError(f"pushes answered {statuses}")
        if not {s for k, s in statuses if k == "confirm"} <= {200, 202}:
            raise RuntimeError(f"confirms answered {statuses}")
        doubles = [c for c, _ in racing if len(node.commerce.orders_for(c)) != 1]
        if doubles:
            raise RuntimeError(f"carts with more than one shop order: {doubles}")
        rows.append(
            {
                "name": f"race ({args.confirms} confirms + {args.pushes} pushes)",
                "calls": len(calls),
                "seconds": elapsed,
                "confirm_202": sum(1 for k, _, s in answers if k == "confirm" and s == 202),
            }
        )
        wait_until(
            lambda: all(node.kustom.stored_order(o)["acknowledged"] for _, o in racing + plain),
            timeout=60,
            interval=0.02,
        )
        acked_after = time.perf_counter() - started

        # The race's call volume against completed carts.
        calls = [("confirm", cart_id, order_id) for cart_id, order_id in racing] * per_cart
        random.shuffle(calls)
        started, answers = fire(node, calls, args.concurrency)
        elapsed = time.perf_counter() - started
        if {status for *_, status in answers} != {200}:
            raise RuntimeError("repeat confirms of completed carts did not all answer 200")
        rows.append(
            {"name": "repeat confirms, completed carts", "calls": len(calls), "seconds": elapsed}
        )

    for row in rows:
        row["carts_per_s"] = args.carts / row["seconds"]
        row["calls_per_s"] = row["calls"] / row["seconds"]
    uncontested, race, floor = rows
    print()
    print(
        markdown_table(
            ["row", "carts", "calls", "seconds", "carts/s", "calls/s"],
            [
                [
                    r["name"],
                    args.carts,
                    r["calls"],
                    f"{r['seconds']:.2f}",
                    f"{r['carts_per_s']:.1f}",
                    f"{r['calls_per_s']:.0f}",
                ]
                for r in rows
            ],
        )
    )
    print(
        f"\nrace: exactly one shop order for each of {args.carts} carts; "
        f"{race.get('confirm_202', 0)} confirms answered 202 (a completion in progress); "
        f"every Kustom order acknowledged {acked_after:.2f} s after the race began."
    )
    figures = [
        Figure(
            "race completions/s",
            race["carts_per_s"],
            "carts/s",
            baseline=uncontested["carts_per_s"],
            ratio=race["carts_per_s"] / uncontested["carts_per_s"],
            target="one shop order per cart",
            ok=True,
            note="baseline: 1 uncontested confirm per cart",
        ),
        Figure(
            "race completions/s vs same calls, nothing to do",
            race["carts_per_s"],
            "carts/s",
            baseline=floor["carts_per_s"],
            ratio=race["carts_per_s"] / floor["carts_per_s"],
            note=f"baseline: {per_cart} confirms per completed cart",
        ),
    ]
    print()
    print(figures_table(figures))
    save_run(
        "race",
        figures=figures,
        rows=[{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
        machine=machine,
        meta={
            "carts": args.carts,
            "confirms": args.confirms,
            "pushes": args.pushes,
            "concurrency": args.concurrency,
            "acknowledged_after_s": round(acked_after, 3),
            "server": "gunicorn, Procfile web line (gthread)",
            "worker": "1 Celery worker, concurrency 2",
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
