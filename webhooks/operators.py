"""Operator commands, run with the service's environment (no web server needed):

    kustom-app cart show <cartId> [--json]
    kustom-app deadletters list [--json]
    kustom-app deadletters retry <id> [--json]
    kustom-app deadletters drop <id> [--json]
    kustom-app sweep [--json]
    kustom-app doctor [--json]
    kustom-app mismatches [--json]
    kustom-app resolve <cartId> --retry|--dismiss [--reason "..."] [--json]

``kustom-app`` (pyproject [project.scripts]) is this same group as
``flask --app webhooks.app kustom``: both build the app with `create_app` from the
environment. With ``--json`` a command prints one JSON document on stdout (an error too:
``{"error": {"code", "message"}}``); logs go to stderr. Exit codes: `EXIT_CODES`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
import redis
from flask.cli import AppGroup

from kustom_app.completion import CompletionError, open_mismatches, resolve_mismatch
from kustom_app.doctor import run_checks
from kustom_app.operators import (
    DeadLetterNotRetryable,
    cart_report,
    dead_letter_summary,
    drop_dead_letter,
    requeue_dead_letter,
)
from webhooks import extension

# The exit codes of every command (docs/operations.md, "Operator commands").
OK = 0
FAILED = 1  # doctor: a check failed; retry: the job could not be queued; resolve refused
USAGE = 2  # click's own: a bad option or argument
NOT_FOUND = 3  # no such cart or dead letter
BUSY = 4  # sweep: another sweeper run holds the lock
UNREACHABLE = 5  # Redis (or the broker) did not answer
EXIT_CODES = {
    OK: "ok",
    FAILED: "failed",
    USAGE: "usage",
    NOT_FOUND: "not found",
    BUSY: "busy",
    UNREACHABLE: "unreachable",
}

cli = AppGroup("kustom", help="Operator commands of kustom-app (exit codes: 0 ok, 1 failed, "
               "2 usage, 3 not found, 4 busy, 5 Redis unreachable).")  # fmt: skip

json_option = click.option(
    "--json", "as_json", is_flag=True, help="One JSON document on stdout instead of text."
)


def _when(at_ms: int | None) -> str:
    if not at_ms:
        return "?"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at_ms / 1000))


def _emit(as_json: bool, document: Any, text: Callable[[], Iterator[str]]) -> None:
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str))
        return
    for line in text():
        click.echo(line)


def _fail(as_json: bool, exit_code: int, code: str, message: str) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": {"code": code, "message": message}}, indent=2))
    else:
        click.echo(f"Error: {message}", err=True)
    sys.exit(exit_code)


@contextmanager
def _redis_errors(as_json: bool) -> Iterator[None]:
    """Redis down is an answer too: exit 5 with a message, not a traceback."""
    try:
        yield
    except redis.RedisError as e:
        _fail(as_json, UNREACHABLE, "redis_unreachable", f"Redis did not answer: {e}")


# cart show -----------------------------------------------------------------------------


@cli.group("cart")
def cart() -> None:
    """One cart's story."""


def _fields(entry: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    return " ".join(f"{k}={v}" for k, v in entry.items() if k not in skip and v is not None)


def _cart_lines(report: dict[str, Any]) -> Iterator[str]:
    head = f"cart {report['cartId']}"
    if report["expired"]:
        yield f"{head}  (the cart itself expired; its records below remain)"
    else:
        yield f"{head}  state={report['state']} version={report['version']}"
        yield (
            f"  hashes       pending={report['pendingHash']} sync={report['syncHash']} "
            f"syncing={'yes' if report['syncing'] else 'no'}"
        )
        order = report["kustomOrder"]
        if order:
            age = order["ageSeconds"]
            flags = ("usable" if order["usable"] else "unusable") + (
                " read-only" if order["readOnly"] else ""
            )
            yield f"  kustom order {order['id']} age={age}s {flags}"
        else:
            yield "  kustom order none"
        c = report["completion"]
        if c["claim"]:
            claim = c["claim"]
            yield (
                f"  claim        order={claim['orderId']} path={claim['path']} "
                f"lease until {_when(claim['leaseUntil'])}"
            )
        if c["orderNumber"]:
            ack = (
                f"acknowledged {_when(c['acknowledgedAt'])}"
                if c["acknowledged"]
                else "NOT acknowledged"
            )
            yield (
                f"  completion   order number {c['orderNumber']} (order {c['orderId']}) by "
                f"{c['completedBy']} at {_when(c['completedAt'])}, fraud={c['fraudStatus']}, {ack}"
            )
        else:
            yield "  completion   not completed"
        if c["error"]:
            yield f"  last error   {json.dumps(c['error'])}"
        mismatch = report["mismatch"]
        yield f"  mismatch     {json.dumps(mismatch) if mismatch else 'none'}"
    payments = report["payments"]
    if not payments:
        yield "  payments     none"
    for p in payments:
        yield (
            f"  payment      {p['kind']} {p['id']} {p['status']} amount={p['amount']} "
            f"{p['currency'] or ''} kustom_id={p['kustomId'] or '-'} error={p['error'] or '-'} "
            f"result_delivered={'yes' if p['resultDelivered'] else 'no'}"
        )
    letters = report["deadLetters"]
    if not letters:
        yield "  dead letters none"
    for d in letters:
        when = _when((d["at"] or 0) * 1000)
        yield f"  dead letter  {d['id']} {d['task']} at {when}: {d['error']}"
    timeline = report["timeline"]
    yield f"timeline ({len(timeline)} entries, oldest first)"
    for entry in timeline:
        at = entry.get("at")
        stamp = (
            time.strftime("%H:%M:%S", time.gmtime(at / 1000)) + f".{at % 1000:03d}" if at else "?"
        )
        yield f"  {stamp}  {entry.get('event')}  {_fields(entry, ('at', 'event'))}".rstrip()


@cart.command("show")
@click.argument("cart_id")
@json_option
def cart_show(cart_id: str, as_json: bool) -> None:
    """State, hashes, Kustom order, completion, payments and timeline of CART_ID."""
    services = extension.services()
    with _redis_errors(as_json):
        report = cart_report(services.store, services.payments, cart_id)
    if report is None:
        _fail(as_json, NOT_FOUND, "cart_not_found", f"Nothing is known about cart {cart_id}.")
    _emit(as_json, report, lambda: _cart_lines(report))


# deadletters -----------------------------------------------------------------------------


@cli.group("deadletters")
def deadletters() -> None:
    """The tasks that gave up: list them, queue one again, or drop one."""


@deadletters.command("list")
@json_option
def deadletters_list(as_json: bool) -> None:
    """Every dead letter, newest first: id, task, cart, error, when."""
    store = extension.services().store
    with _redis_errors(as_json):
        letters = [dead_letter_summary(letter) for letter in store.dead_letters.all()]

    def lines() -> Iterator[str]:
        if not letters:
            yield "No dead letters."
        for d in letters:
            ids = _fields(d["ids"])
            yield (
                f"{d['id']}  {d['task']}  cart={d['cart'] or '-'}  "
                f"at={_when((d['at'] or 0) * 1000)}  {ids}".rstrip()
            )
            yield f"    {d['error']}"

    _emit(as_json, {"deadLetters": letters, "count": len(letters)}, lines)


def _letter(as_json: bool, letter_id: str) -> Any:
    found = extension.services().store.dead_letters.find(letter_id)
    if found is None:
        _fail(as_json, NOT_FOUND, "dead_letter_not_found", f"No dead letter {letter_id}.")
    return found


@deadletters.command("retry")
@click.argument("letter_id")
@json_option
def deadletters_retry(letter_id: str, as_json: bool) -> None:
    """Queue LETTER_ID's job again (through the worker's queues), then remove it."""
    services = extension.services()
    with _redis_errors(as_json):
        letter = _letter(as_json, letter_id)
        try:
            ids = requeue_dead_letter(services.store, letter, extension.jobs())
        except DeadLetterNotRetryable as e:
            _fail(as_json, FAILED, "not_retryable", f"{letter_id}: {e}")
        except Exception as e:  # the broker refused the job: the entry stays
            _fail(as_json, FAILED, "not_queued", f"{letter_id}: not queued ({type(e).__name__})")
    document = {"id": letter_id, "task": letter.task, "queued": ids, "removed": True}
    _emit(
        as_json,
        document,
        lambda: iter([f"{letter_id}: {letter.task}({', '.join(ids)}) queued again; removed."]),
    )


@deadletters.command("drop")
@click.argument("letter_id")
@json_option
def deadletters_drop(letter_id: str, as_json: bool) -> None:
    """Remove LETTER_ID without running it (handled outside the service)."""
    services = extension.services()
    with _redis_errors(as_json):
        letter = _letter(as_json, letter_id)
        removed = drop_dead_letter(services.store, letter)
    if not removed:
        _fail(as_json, NOT_FOUND, "dead_letter_not_found", f"No dead letter {letter_id}.")
    document = {"id": letter_id, "task": letter.task, "removed": True}
    _emit(as_json, document, lambda: iter([f"{letter_id}: {letter.task} dropped."]))


# sweep -----------------------------------------------------------------------------------


@cli.command("sweep")
@json_option
def sweep(as_json: bool) -> None:
    """Run the sweeper now, in this process (what beat queues every interval)."""
    services = extension.services()
    with _redis_errors(as_json):
        report = services.reconciler(extension.jobs()).run()
    if report is None:
        _fail(as_json, BUSY, "sweeper_busy", "Another sweeper run holds the lock; try again.")
    document = {
        "fixed": report.fixed,
        **report.counts(),
        "deadletterTasks": report.deadletter_tasks,
        "deadletterLatest": report.deadletter_latest,
    }

    def lines() -> Iterator[str]:
        yield f"Sweeper run: fixed {report.fixed}."
        for name, value in report.counts().items():
            yield f"  {name:<22} {value}"
        for task, count in sorted(report.deadletter_tasks.items()):
            yield f"  dead letters of {task}: {count}"

    _emit(as_json, document, lines)


# doctor ----------------------------------------------------------------------------------


@cli.command("doctor")
@json_option
def doctor(as_json: bool) -> None:
    """Check this deployment: Redis, broker, Kustom credentials, commerce backend and its
    signature, PUBLIC_BASE_URL, the visibility-timeout arithmetic, CALLBACK_SECRET.
    Exits 1 when any check fails."""
    from workers.broker_check import check_broker

    services = extension.services()
    checks = run_checks(services, lambda: check_broker(services.settings.celery_broker_url))
    healthy = all(c.ok for c in checks)

    def lines() -> Iterator[str]:
        for c in checks:
            yield f"{'PASS' if c.ok else 'FAIL'}  {c.name:<18} {c.reason}"
        yield (
            "healthy" if healthy else f"unhealthy: {sum(not c.ok for c in checks)} check(s) failed"
        )

    _emit(as_json, {"healthy": healthy, "checks": [c.as_json() for c in checks]}, lines)
    if not healthy:
        sys.exit(FAILED)


# mismatches ------------------------------------------------------------------------------


@cli.command("mismatches")
@json_option
def mismatches(as_json: bool) -> None:
    """List the completions refused for amount_mismatch that wait for an operator."""
    with _redis_errors(as_json):
        found = open_mismatches(extension.services().store)
    document = {
        "mismatches": [
            {
                "cartId": m.cart_id,
                "kustomOrderId": m.order_id,
                "since": m.at_ms,
                "cartState": m.cart_state,
                "reasons": m.reasons,
            }
            for m in found
        ]
    }

    def lines() -> Iterator[str]:
        if not found:
            yield "No open mismatches."
        for m in found:
            yield (
                f"{m.cart_id} order={m.order_id or '?'} since={_when(m.at_ms)} "
                f"cart={m.cart_state or 'expired'}"
            )
            for reason in m.reasons:
                yield f"  - {reason}"

    _emit(as_json, document, lines)


@cli.command("resolve")
@click.argument("cart_id")
@click.option(
    "--retry",
    "action",
    flag_value="retry",
    help="The Kustom order now matches the cart: complete the cart again.",
)
@click.option(
    "--dismiss",
    "action",
    flag_value="dismiss",
    help="Handled outside (e.g. cancelled at Kustom): stop alerting about it.",
)
@click.option("--reason", help="Why; required with --dismiss, kept on the cart and logged.")
@json_option
def resolve(cart_id: str, action: str | None, reason: str | None, as_json: bool) -> None:
    """Close the open mismatch of CART_ID: --retry or --dismiss."""
    if action is None:
        raise click.UsageError("Give --retry or --dismiss.")
    store = extension.services().store
    with _redis_errors(as_json):
        try:
            mismatch = resolve_mismatch(store, cart_id, retry=action == "retry", reason=reason)
        except CompletionError as e:
            _fail(as_json, FAILED, e.code, f"{e.code}: {e.message}")
    if action == "retry":
        assert mismatch.order_id is not None
        extension.jobs().complete(cart_id, mismatch.order_id, "operator")
        text = f"{cart_id}: mismatch cleared; completion of order {mismatch.order_id} queued."
    else:
        text = f"{cart_id}: mismatch of order {mismatch.order_id or '?'} dismissed."
    document = {"cartId": cart_id, "action": action, "kustomOrderId": mismatch.order_id}
    _emit(as_json, document, lambda: iter([text]))
