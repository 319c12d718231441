"""``python -m playground.kustom``: the same as ``kustom-playground serve`` (playground.cli).

    python -m playground.kustom --host 127.0.0.1 --port 8710 [--state-file PATH]
        [--latency 0.05] [--push-delay 2] [--update-delay 1] [--username U --password P]

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

from playground.cli import add_serve_arguments, serve

PUSH_DELAY_ENV = "KUSTOM_PLAYGROUND_PUSH_DELAY"
UPDATE_DELAY_ENV = "KUSTOM_PLAYGROUND_UPDATE_DELAY"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m playground.kustom",
        description="Serve the Kustom Checkout v3 / Order Management double "
        "(the same as `kustom-playground serve`).",
    )
    add_serve_arguments(parser)
    return serve(parser.parse_args(argv), parser)


if __name__ == "__main__":
    raise SystemExit(main())
