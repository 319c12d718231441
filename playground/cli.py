"""``kustom-playground``: the local Kustom playground as a tool, like stripe-mock + stripe CLI.

    kustom-playground serve [--host 127.0.0.1] [--port 8710] [--state-file PATH] ...
    kustom-playground trigger pay <order_id>          the shopper pays; then Kustom's push
    kustom-playground trigger push <order_id>         Kustom's push again
    kustom-playground trigger fail --status 503 --count 2
    kustom-playground orders [<order_id>]             what the playground holds

``serve`` runs the Kustom double (``playground.kustom``: Checkout v3 and Order Management
with Kustom's rules, the shopper's iframe page) on its own, without kustom-app. ``trigger``
talks to a running playground over HTTP (``--url``, or ``KUSTOM_PLAYGROUND_URL``) through
its control API under ``/_playground/``, which sends each callback to the order's
``merchant_urls`` as Kustom does and prints what the merchant answered (``--json`` for the
whole report). See docs/playground.md. Like every double here, this never imports
kustom_app, webhooks or workers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import requests

from playground.statefile import StateFileError

URL_ENV = "KUSTOM_PLAYGROUND_URL"
PUSH_DELAY_ENV = "KUSTOM_PLAYGROUND_PUSH_DELAY"
UPDATE_DELAY_ENV = "KUSTOM_PLAYGROUND_UPDATE_DELAY"
STATE_FILE_ENV = "KUSTOM_PLAYGROUND_STATE_FILE"
DEFAULT_PORT = 8710
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
# Long enough for a merchant's slow callback (the playground waits up to 10 s for it).
TRIGGER_TIMEOUT = (5.0, 60.0)
FRAUD_DECISIONS = ("ACCEPTED", "REJECTED", "STOPPED")
# A callback URL's token (kustom-app's per-cart one, say) is a credential: CI logs keep the
# printed lines, so they show it as ***; --json reports the URL whole, for scripts.
_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|secret|signature|key)=)[^&#]*", re.IGNORECASE)


def shown_url(url: str) -> str:
    """The URL with its token-like query values hidden."""
    return _SECRET_QUERY.sub(r"\1***", url)


# ------------------------------------------------------------------------------ serve


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``serve`` (also ``python -m playground.kustom``)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT}; 0: a free one)"
    )
    parser.add_argument(
        "--state-file",
        default=os.environ.get(STATE_FILE_ENV) or None,
        metavar="PATH",
        help="keep the orders in this JSON file, so they survive a restart (env "
        f"{STATE_FILE_ENV}; default: in memory only)",
    )
    parser.add_argument(
        "--username",
        default="playground",
        help="the HTTP Basic username the Kustom API requires (playground)",
    )
    parser.add_argument(
        "--password",
        default="playground",
        help="the HTTP Basic password the Kustom API requires (playground)",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="the playground's URL as others reach it, in Location headers and the iframe "
        "(default http://HOST:PORT)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every API call (0)"
    )
    parser.add_argument(
        "--push-delay",
        type=float,
        default=float(os.environ.get(PUSH_DELAY_ENV) or 2.0),
        help="seconds from the shopper's Pay in the iframe to the push (env "
        f"{PUSH_DELAY_ENV}; 2; Kustom: about 2 minutes)",
    )
    parser.add_argument(
        "--update-delay",
        type=float,
        default=float(os.environ.get(UPDATE_DELAY_ENV) or 0.0),
        help=f"seconds added to each order update's answer (env {UPDATE_DELAY_ENV}; 0)",
    )
    parser.add_argument(
        "--order-lifetime",
        type=float,
        default=48 * 3600.0,
        metavar="SECONDS",
        help="an unpaid order untouched this long is gone (404), as Kustom's 48 h (172800)",
    )


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for name in ("latency", "push_delay", "update_delay"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.order_lifetime <= 0:
        parser.error("--order-lifetime must be > 0")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")

    from werkzeug.serving import make_server

    from playground.kustom.app import create_app
    from playground.server import serve_until_interrupted

    try:
        app = create_app(
            username=args.username,
            password=args.password,
            latency_seconds=args.latency,
            base_url=args.base_url,
            push_delay_seconds=args.push_delay,
            update_delay_seconds=args.update_delay,
            order_lifetime_seconds=args.order_lifetime,
            state_file=args.state_file,
        )
    except StateFileError as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as e:
        parser.exit(1, f"{parser.prog}: error: cannot listen on {args.host}:{args.port}: {e}\n")
    url = args.base_url or f"http://{args.host}:{server.server_port}"
    held = len(app.extensions["kustom_double"].order_ids())
    print(f"Kustom playground double listening on {url}", flush=True)
    # The default login is the playground's public dummy; a chosen password is not printed.
    shown = args.password if args.password == "playground" else "<your --password>"  # noqa: S105
    print(
        f"  KUSTOM_API_URL={url} KUSTOM_USERNAME={args.username} KUSTOM_PASSWORD={shown}",
        flush=True,
    )
    where = args.state_file or "memory only"
    print(f"  state: {where} ({held} orders held)", flush=True)
    print(
        f"  control: {url}/_playground/... (kustom-playground trigger --url {url} ...)", flush=True
    )
    # SIGTERM (docker stop, a CI job's end) ends like Ctrl-C; the state is already on disk.
    signal.signal(signal.SIGTERM, _interrupt)
    return serve_until_interrupted(server)


def _interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------ trigger


class PlaygroundUnreachable(Exception):
    pass


class Playground:
    """The control API of a running playground."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            answer = self.session.request(
                method, f"{self.url}/_playground{path}", json=body, timeout=TRIGGER_TIMEOUT
            )
        except requests.RequestException as e:
            raise PlaygroundUnreachable(f"cannot reach the playground at {self.url}: {e}") from e
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, {"error": answer.text[:500] or f"HTTP {answer.status_code}"}


def _key_values(pairs: Sequence[str] | None, parser: argparse.ArgumentParser) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--address takes KEY=VALUE (got {pair!r})")
        result[key] = value
    return result


def trigger_request(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[str, str, dict[str, Any]]:
    """(method, path under /_playground, body) for the chosen trigger."""
    event = args.event
    if event in ("slow", "fail"):
        if args.for_seconds is None and args.count is None:
            parser.error(f"trigger {event}: give --for SECONDS and/or --count N")
        window = {"for_seconds": args.for_seconds, "count": args.count}
        if event == "slow":
            return "POST", "/slow", {"seconds": args.seconds, **window}
        scope = {"operation": args.operation, "order_id": args.order}
        return "POST", "/fail", {"status": args.status, **scope, **window}
    if event == "recover":
        return "DELETE", "/trouble", {}
    path = f"/orders/{args.order_id}/{event}"
    if event == "pay":
        body: dict[str, Any] = {
            "validate": not args.no_validation,
            "push": not args.no_push,
            "fraud_status": "PENDING" if args.pending else "ACCEPTED",
        }
        address = _key_values(args.address, parser)
        if address:
            body["address"] = address
        return "POST", path, body
    if event in ("validation", "address-update"):
        address = _key_values(args.address, parser)
        return "POST", path, {"address": address} if address else {}
    if event == "country-change":
        return "POST", path, {"country": args.country}
    if event == "shipping-option-update":
        return "POST", path, {"option_id": args.option} if args.option else {}
    if event == "fraud":
        return "POST", path, {"decision": args.decision}
    return "POST", path, {}  # push, expire


def describe(report: dict[str, Any]) -> list[str]:
    """The report as a person reads it: what was sent, what came back, the order now."""
    lines: list[str] = []
    trigger = report.get("trigger")
    if trigger in ("fail", "slow", "recover"):
        outage, slowdown = report.get("outage"), report.get("slowdown")
        if outage:
            scope = outage.get("operation") or "every API call"
            if outage.get("order_id"):
                scope += f" about order {outage['order_id']}"
            lines.append(f"Kustom API failing: {scope} answers {outage['status']}{_window(outage)}")
        if slowdown:
            lines.append(f"Kustom API slow: +{slowdown['seconds']} s per call{_window(slowdown)}")
        if not outage and not slowdown:
            lines.append("Kustom API healthy: no failure or slowdown in force")
        return lines
    lines.append(f"{trigger} {report.get('order_id')}")
    for sent in report.get("callbacks") or []:
        outcome = sent.get("error") or f"HTTP {sent.get('status')}"
        lines.append(f"  -> {sent['kind']}: POST {shown_url(sent['url'])} => {outcome}")
        answer = sent.get("answer")
        if answer not in (None, "", {}):
            text = json.dumps(answer) if not isinstance(answer, str) else answer
            lines.append(f"     answer: {text[:300]}")
        if sent.get("location"):
            lines.append(f"     Location: {sent['location']}")
    for name in ("completed", "approved", "applied"):
        if name in report:
            lines.append(f"  {name}: {'yes' if report[name] else 'no'}")
    if report.get("refusal"):
        lines.append(f"  refused: {json.dumps(report['refusal'])}")
    if report.get("error"):
        lines.append(f"  error: {report['error']}")
    if report.get("note"):
        lines.append(f"  note: {report['note']}")
    order = report.get("order") or {}
    if order:
        state = order.get("status")
        if order.get("expired"):
            state = f"{state}, expired"
        if order.get("om_status"):
            state = f"{state}; order management {order['om_status']}, fraud {order['fraud_status']}"
        lines.append(f"  order: {state}")
    return lines


def _window(window: dict[str, Any]) -> str:
    parts = []
    if window.get("remaining") is not None:
        parts.append(f"{window['remaining']} more calls")
    if window.get("until") is not None:
        parts.append("until " + _clock(window["until"]))
    return f" ({', '.join(parts)})" if parts else ""


def _clock(epoch: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(epoch))


def run_trigger(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    method, path, body = trigger_request(args, parser)
    try:
        status, report = Playground(args.url).call(method, path, body)
    except PlaygroundUnreachable as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    if status >= 400:
        message = report.get("error") if isinstance(report, dict) else report
        print(f"{parser.prog}: error: the playground answered {status}: {message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print("\n".join(describe(report)))
    return 0


def run_orders(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    path = f"/orders/{args.order_id}" if args.order_id else "/orders"
    try:
        status, body = Playground(args.url).call("GET", path)
    except PlaygroundUnreachable as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    if status >= 400:
        print(
            f"{parser.prog}: error: the playground answered {status}: {body.get('error')}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
        return 0
    for order in body if isinstance(body, list) else [body]:
        state = order["status"] + (", expired" if order["expired"] else "")
        if order.get("om_status"):
            state += f"; {order['om_status']}"
        reference = order["checkout"].get("merchant_reference1") or "-"
        amount = order["checkout"]["order_amount"]
        currency = order["checkout"]["purchase_currency"]
        print(f"{order['order_id']}  {state}  {amount} {currency} (minor units)  ref {reference}")
    return 0


# ------------------------------------------------------------------------------ the parser


def _client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"the running playground (env {URL_ENV}; {DEFAULT_URL})",
    )
    common.add_argument("--json", action="store_true", help="print the whole report as JSON")
    return common


def _window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--for", dest="for_seconds", type=float, metavar="SECONDS", help="for this long"
    )
    parser.add_argument("--count", type=int, metavar="N", help="for the next N API calls")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kustom-playground",
        description="The local Kustom playground: a stand-in for Kustom's Checkout v3 and "
        "Order Management APIs (serve), and the events Kustom sends (trigger). "
        "Docs: docs/playground.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve",
        help="run the playground (the Kustom API and the shopper's checkout page)",
        description="Serve the Kustom double standalone. Point your service at it with "
        "KUSTOM_API_URL=http://HOST:PORT and the --username/--password as its credentials.",
    )
    add_serve_arguments(serve_parser)

    common = _client_options()
    orders = commands.add_parser(
        "orders", parents=[common], help="list the orders the playground holds, or show one"
    )
    orders.add_argument("order_id", nargs="?", help="one order's id (default: all)")

    trigger = commands.add_parser(
        "trigger",
        help="make Kustom do something to an order, or to its API",
        description="Send the callback Kustom sends, to the order's merchant_urls, and print "
        "what the merchant answered. Exit status 1 when the playground refuses (unknown order, "
        "wrong state) or cannot be reached; the merchant's answer itself is reported, not judged.",
    )
    events = trigger.add_subparsers(dest="event", required=True, metavar="EVENT")

    def order_event(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = events.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.add_argument("order_id", help="the Kustom order id (checkout order_id)")
        return sub

    pay = order_event(
        "pay",
        "the shopper pays: validation callback, checkout_complete (AUTHORIZED), then the push",
    )
    pay.add_argument("--no-validation", action="store_true", help="skip the validation callback")
    pay.add_argument("--no-push", action="store_true", help="complete without pushing")
    pay.add_argument(
        "--pending", action="store_true", help="fraud_status PENDING (then: trigger fraud)"
    )
    pay.add_argument(
        "--address", action="append", metavar="KEY=VALUE",
        help="the shopper's address field (given_name, email, postal_code, ...), repeatable",
    )  # fmt: skip
    order_event("push", "Kustom's push for a completed order (empty body), again")
    validation = order_event(
        "validation", "the validation callback alone: the merchant's answer; the order is unchanged"
    )
    validation.add_argument("--address", action="append", metavar="KEY=VALUE", help="address field")
    address = order_event(
        "address-update", "the shopper enters a shipping address: the address_update callback"
    )
    address.add_argument("--address", action="append", metavar="KEY=VALUE", help="address field")
    shipping = order_event(
        "shipping-option-update",
        "the shopper picks a shipping option: the shipping_option_update callback",
    )
    shipping.add_argument("--option", metavar="ID", help="the option's id (default: another one)")
    country = order_event(
        "country-change", "the shopper changes the billing country: the country_change callback"
    )
    country.add_argument("--country", required=True, help="ISO 3166 alpha-2, such as DE")
    order_event("expire", "the order is past Kustom's 48 h: 404 for it from now on")
    fraud = order_event(
        "fraud", "Kustom's fraud decision on a completed order: the notification callback"
    )
    fraud.add_argument("--decision", required=True, choices=FRAUD_DECISIONS)

    slow = events.add_parser(
        "slow", parents=[common], help="make the Kustom API slow for a while",
        description="Every API call answers SECONDS later (then acts normally), for --for "
        "SECONDS and/or the next --count calls.",
    )  # fmt: skip
    slow.add_argument("--seconds", type=float, required=True, help="added to each API call")
    _window_options(slow)
    fail = events.add_parser(
        "fail", parents=[common], help="make the Kustom API fail for a while",
        description="Every API call (or --operation's) answers --status with Kustom's error "
        "body and does nothing, for --for SECONDS and/or the next --count calls.",
    )  # fmt: skip
    fail.add_argument("--status", type=int, default=503, help="HTTP status 400..599 (503)")
    fail.add_argument(
        "--operation", help="only this operation (create_order, update_order, capture, ...)"
    )
    fail.add_argument("--order", metavar="ORDER_ID", help="only calls about this order")
    _window_options(fail)
    events.add_parser("recover", parents=[common], help="end a slow or fail window now")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args, parser)
    if args.command == "orders":
        return run_orders(args, parser)
    return run_trigger(args, parser)


if __name__ == "__main__":
    raise SystemExit(main())
