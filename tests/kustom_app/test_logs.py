"""Log lines: one event per line, JSON when asked, the cart on every line about one, no
credentials."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
import requests
import responses

from kustom_app.logs import (
    JsonFormatter,
    TextFormatter,
    bind_cart,
    bind_task,
    cart_context,
    event_log,
    install_formatter,
    redact,
    unbind,
)
from tests.domain import kustom_client


class Captured:
    """A logger whose lines are formatted as a process of the service formats them."""

    def __init__(self, log_format: str) -> None:
        self.stream = io.StringIO()
        self.handler = install_formatter(logging.StreamHandler(self.stream), log_format)
        self.logger = logging.getLogger(f"tests.logs.{log_format}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def entries(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)


@pytest.fixture
def json_lines() -> Iterator[Captured]:
    captured = Captured("json")
    yield captured
    captured.close()
    unbind()


@pytest.fixture
def text_lines() -> Iterator[Captured]:
    captured = Captured("text")
    yield captured
    captured.close()
    unbind()


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
    assert entry["correlation_id"] == "corr-42" and entry["status"] == 200
    assert entry["level"] == "info" and entry["logger"] == "kustom_app.kustom"
    assert all("s3cret-pass" not in line and "merchant-user" not in line for line in lines)
    assert "s3cret" not in repr(client)


def test_fields_are_structured_in_json_and_key_value_in_text(json_lines, text_lines):
    for captured in (json_lines, text_lines):
        event_log(captured.logger.name).critical(
            "kustom.completion.amount_mismatch",
            cart="cart-1",
            order="o-1",
            reasons=["the order amount 60000 differs from the cart's 54900"],
        )
    (entry,) = json_lines.entries()
    assert entry["event"] == "kustom.completion.amount_mismatch"
    assert (entry["cart"], entry["order"], entry["level"]) == ("cart-1", "o-1", "critical")
    assert entry["reasons"] == ["the order amount 60000 differs from the cart's 54900"]
    assert "msg" not in entry, "an event's fields are its keys, not a message to parse"
    (line,) = text_lines.lines
    assert (
        " CRITICAL tests.logs.text kustom.completion.amount_mismatch cart=cart-1 order=o-1 " in line
    )
    assert line.endswith('reasons=["the order amount 60000 differs from the cart\'s 54900"]')


def test_a_value_with_a_newline_cannot_start_a_line_of_its_own(text_lines):
    event_log(text_lines.logger.name).warning(
        "kustom.notification.unknown_event_type", cart="c1", event_type="x\nFAKE line"
    )
    assert len(text_lines.lines) == 1
    assert text_lines.lines[0].endswith('cart=c1 event_type="x\\nFAKE line"')


def test_a_sentence_stays_as_written_on_a_text_line(text_lines):
    event_log(text_lines.logger.name).warning(
        "kustom.completion.mismatch_retry", cart="c1", reason="amount fixed at Kustom"
    )
    assert text_lines.lines[0].endswith("mismatch_retry cart=c1 reason=amount fixed at Kustom")


def test_the_bound_cart_and_task_are_on_every_line_even_other_libraries(json_lines, text_lines):
    bind_cart("cart-7")
    bind_task("task-1")
    for captured in (json_lines, text_lines):
        captured.logger.info("Task syncKustomOrder[task-1] succeeded in 0.01s: None")
        event_log(captured.logger.name).info("kustom.sync.pushed", cart="cart-7", order="o")
    first, second = json_lines.entries()
    assert first["msg"] == "Task syncKustomOrder[task-1] succeeded in 0.01s: None"
    assert (first["cart"], first["task_id"]) == ("cart-7", "task-1")
    assert (second["cart"], second["task_id"]) == ("cart-7", "task-1")
    text_first, text_second = text_lines.lines
    assert text_first.endswith("succeeded in 0.01s: None cart=cart-7 task_id=task-1")
    assert text_second.endswith("kustom.sync.pushed cart=cart-7 order=o task_id=task-1")
    unbind()
    json_lines.logger.info("next job")
    assert "cart" not in json_lines.entries()[-1]


def test_a_cart_context_ends_with_its_block_and_stays_in_its_thread(json_lines):
    seen: list[object] = []

    def other_thread() -> None:
        json_lines.logger.info("elsewhere")

    with cart_context("cart-3"):
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        json_lines.logger.info("inside")
    json_lines.logger.info("after")
    for entry in json_lines.entries():
        seen.append((entry["msg"], entry.get("cart")))
    assert sorted(seen, key=str) == sorted(
        [("elsewhere", None), ("inside", "cart-3"), ("after", None)], key=str
    )


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("POST /kustom/push?order_id=o1&cart=c1&token=06ffab12 HTTP/1.1", "06ffab12"),
        ("token=06ffab12&cart=c1", "06ffab12"),
        ("url: /kustom/validate?cart=c1&token=ab%2F12 (Caused by ...)", "ab%2F12"),
        ("GET /x?signature=deadbeef&password=hunter2", "deadbeef"),
        ("GET /x?signature=deadbeef&password=hunter2", "hunter2"),
        ("GET /x?api_key=k-123&client_secret=s-456", "k-123"),
        ("GET /x?api_key=k-123&client_secret=s-456", "s-456"),
        ("{'Authorization': 'Basic bWVyY2hhbnQ6czNjcmV0'}", "bWVyY2hhbnQ6czNjcmV0"),
        ("Authorization: Bearer eyJhbGciOi.abc", "eyJhbGciOi"),
        ('{"authorization": "Basic bWVyY2hhbnQ6czNjcmV0"}', "bWVyY2hhbnQ6czNjcmV0"),
        ("headers sent: Basic bWVyY2hhbnQ6czNjcmV0", "bWVyY2hhbnQ6czNjcmV0"),
        ("Error connecting to redis://:r3dis-pass@redis:6379/0", "r3dis-pass"),
    ],
)
def test_secrets_are_masked(line, secret):
    masked = redact(line)
    assert secret not in masked
    assert "***" in masked


def test_ids_and_ordinary_fields_are_left_alone():
    line = "kustom.sync.pushed cart=c1 order=o-1 hash=abc123 next=done status=200 code=x"
    assert redact(line) == line
    assert redact("GET /carts/c1/kustom/status?cart=c1&order_id=o1") == (
        "GET /carts/c1/kustom/status?cart=c1&order_id=o1"
    )


def test_an_exception_with_the_callback_url_is_masked_in_both_formats(json_lines, text_lines):
    url = "http://127.0.0.1:1/kustom/push?order_id=o1&cart=c1&token=06ff0123456789"
    try:
        requests.post(url, timeout=0.5)
    except requests.RequestException:
        for captured in (json_lines, text_lines):
            event_log(captured.logger.name).exception("kustom.callback.failed", path="/x")
    assert json_lines.lines and text_lines.lines
    output = json_lines.stream.getvalue() + text_lines.stream.getvalue()
    assert "token=***" in output
    assert "06ff0123456789" not in output
    assert "Traceback" in json_lines.entries()[0]["exc"]


def test_the_text_formatter_keeps_tracebacks_below_the_line():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), None)
    bind_cart("c9")
    try:
        line = TextFormatter().format(record)
    finally:
        unbind()
    assert line.endswith("ERROR x boom cart=c9")
