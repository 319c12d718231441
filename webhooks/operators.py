"""Operator commands (Flask CLI), run with the service's environment:

flask --app webhooks.app kustom mismatches
flask --app webhooks.app kustom resolve <cartId> --retry [--reason "..."]
flask --app webhooks.app kustom resolve <cartId> --dismiss --reason "..."
"""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from kustom_app.completion import CompletionError, open_mismatches, resolve_mismatch
from webhooks import extension

cli = AppGroup("kustom", help="Operator commands of kustom-app.")


def _when(at_ms: int | None) -> str:
    if not at_ms:
        return "?"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at_ms / 1000))


@cli.command("mismatches")
def mismatches() -> None:
    """List the completions refused for amount_mismatch that wait for an operator."""
    found = open_mismatches(extension.services().store)
    if not found:
        click.echo("No open mismatches.")
        return
    for m in found:
        click.echo(
            f"{m.cart_id} order={m.order_id or '?'} since={_when(m.at_ms)} "
            f"cart={m.cart_state or 'expired'}"
        )
        for reason in m.reasons:
            click.echo(f"  - {reason}")


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
def resolve(cart_id: str, action: str | None, reason: str | None) -> None:
    """Close the open mismatch of CART_ID: --retry or --dismiss."""
    if action is None:
        raise click.UsageError("Give --retry or --dismiss.")
    store = extension.services().store
    try:
        mismatch = resolve_mismatch(store, cart_id, retry=action == "retry", reason=reason)
    except CompletionError as e:
        raise click.ClickException(f"{e.code}: {e.message}") from e
    if action == "retry":
        assert mismatch.order_id is not None
        extension.jobs().complete(cart_id, mismatch.order_id, "operator")
        click.echo(f"{cart_id}: mismatch cleared; completion of order {mismatch.order_id} queued.")
    else:
        click.echo(f"{cart_id}: mismatch of order {mismatch.order_id or '?'} dismissed.")
