"""``python -m playground.kustom``: serve the Kustom double (the "Kustom playground").

    python -m playground.kustom --host 127.0.0.1 --port 8710 [--latency 0.05] [--push-delay 2]
        [--update-delay 1]

The html snippet's iframe is a small shopper UI (``/playground/checkout/<order_id>``): the
order as the double has it, a shipping choice that calls the merchant's
``shipping_option_update`` callback (without one, the double swaps its own shipping line,
as Kustom does), an address form and a Pay button that runs the ``validation`` callback,
completes the order, sends the shopper to the confirmation URL and pushes ``--push-delay``
seconds later. ``--update-delay`` makes the answer to the merchant's order updates
(``POST /checkout/v3/orders/{id}``) that much slower, so that a person sees the iframe
suspended while kustom-app syncs (``scripts/run`` sets 1 s).
"""

from __future__ import annotations

import argparse
import os

from werkzeug.serving import make_server

from playground.kustom.app import create_app
from playground.kustom.store import DEFAULT_PUSH_DELAY_SECONDS
from playground.server import serve_until_interrupted

PUSH_DELAY_ENV = "KUSTOM_PLAYGROUND_PUSH_DELAY"
UPDATE_DELAY_ENV = "KUSTOM_PLAYGROUND_UPDATE_DELAY"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m playground.kustom",
        description="Serve the in-memory Kustom Checkout v3 / Order Management double.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to API calls")
    parser.add_argument("--username", default="playground")
    parser.add_argument("--password", default="playground")
    parser.add_argument("--base-url", default=None, help="public URL, if not http://host:port")
    parser.add_argument(
        "--push-delay",
        type=float,
        default=float(os.environ.get(PUSH_DELAY_ENV) or DEFAULT_PUSH_DELAY_SECONDS),
        help=f"seconds from Pay to the push (env {PUSH_DELAY_ENV}; default 2)",
    )
    parser.add_argument(
        "--update-delay",
        type=float,
        default=float(os.environ.get(UPDATE_DELAY_ENV) or 0.0),
        help=f"seconds added to each order update's answer (env {UPDATE_DELAY_ENV}; default 0)",
    )
    args = parser.parse_args(argv)
    if args.push_delay < 0:
        parser.error("--push-delay must be >= 0")
    if args.update_delay < 0:
        parser.error("--update-delay must be >= 0")

    app = create_app(
        username=args.username,
        password=args.password,
        latency_seconds=args.latency,
        base_url=args.base_url,
        push_delay_seconds=args.push_delay,
        update_delay_seconds=args.update_delay,
    )
    server = make_server(args.host, args.port, app, threaded=True)
    url = args.base_url or f"http://{args.host}:{server.server_port}"
    print(f"Kustom playground double listening on {url}", flush=True)
    print(
        f"  KUSTOM_API_URL={url} KUSTOM_USERNAME={args.username} KUSTOM_PASSWORD={args.password}",
        flush=True,
    )
    print(f"  test control: {url}/_double/calls, {url}/_double/orders/<id>/complete", flush=True)
    return serve_until_interrupted(server)


if __name__ == "__main__":
    raise SystemExit(main())
