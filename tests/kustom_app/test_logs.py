"""Log lines: one event per line, JSON when asked, no credentials."""

from __future__ import annotations

import json
import logging

import responses

from kustom_app.logs import JsonFormatter
from tests.domain import kustom_client


def test_json_lines_carry_event_and_context_but_no_credentials(caplog):
    caplog.set_level(logging.INFO)
    client = kustom_client("https://kustom.test", "merchant-user", "s3cret-pass")
    with responses.RequestsMock() as rsps:
        rsps.get(
            "https://kustom.test/checkout/v3/orders/o-1",
            json={"order_id": "o-1"},
            headers={"Klarna-Correlation-Id": "corr-42"},
        )
        client.get_order("o-1", cart="cart-9")
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name == "kustom_app.kustom"]
    assert lines
    entry = json.loads(lines[-1])
    assert entry["event"] == "kustom.call"
    assert entry["op"] == "get_order" and entry["cart"] == "cart-9"
    assert entry["correlation_id"] == "corr-42" and entry["status"] == "200"
    assert all("s3cret-pass" not in line and "merchant-user" not in line for line in lines)
    assert "s3cret" not in repr(client)


def test_json_lines_keep_values_with_spaces_whole_in_msg():
    record = logging.LogRecord(
        "kustom_app.completion",
        logging.CRITICAL,
        __file__,
        1,
        "kustom.completion.amount_mismatch cart=%s order=%s reasons=%s",
        ("cart-1", "o-1", ["the order amount 60000 differs from the cart's 54900"]),
        None,
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["event"] == "kustom.completion.amount_mismatch"
    assert (entry["cart"], entry["order"], entry["level"]) == ("cart-1", "o-1", "critical")
    assert "the order amount 60000 differs from the cart's 54900" in entry["msg"]
