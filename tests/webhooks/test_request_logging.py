"""The cart of a web request: on the app's lines while it runs, and handed to the access
log (gunicorn's, webhooks/access_log.py) when it ends."""

from __future__ import annotations

import datetime
import io
import json
import logging
from types import SimpleNamespace

import pytest

import webhooks.commerce
from kustom_app.logs import bound_cart, install_formatter
from tests.conftest import make_render
from webhooks.access_log import ENVIRON_CART, access_fields, request_cart


@pytest.fixture
def json_lines():
    """The app's lines as a JSON-format process writes them."""
    stream = io.StringIO()
    handler = install_formatter(logging.StreamHandler(stream), "json")
    logger = logging.getLogger("kustom_app")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


@pytest.fixture
def environ_of(app):
    """The WSGI environ of the last request, as the server (gunicorn) holds it after."""
    seen: dict[str, dict[str, object]] = {}
    inner = app.wsgi_app

    def keep(environ, start_response):
        seen["environ"] = environ
        return inner(environ, start_response)

    app.wsgi_app = keep
    yield lambda: seen["environ"]
    app.wsgi_app = inner


def test_a_cart_event_names_its_cart_from_the_body(
    post_render, json_lines, environ_of, monkeypatch
):
    original = webhooks.commerce.ingest_render

    def ingest_and_log(*args, **kwargs):
        logging.getLogger("kustom_app.test").warning("a line that names no cart itself")
        return original(*args, **kwargs)

    monkeypatch.setattr(webhooks.commerce, "ingest_render", ingest_and_log)
    response = post_render(make_render("cart-body-1", 1))
    assert response.status_code == 202
    assert environ_of()[ENVIRON_CART] == "cart-body-1"
    (line,) = [e for e in json_lines() if e.get("msg") == "a line that names no cart itself"]
    assert line["cart"] == "cart-body-1"
    assert bound_cart() is None, "nothing is left bound after the request"


def test_a_cart_url_names_its_cart(client, environ_of):
    client.get("/carts/cart-url-1/kustom/status")
    assert environ_of()[ENVIRON_CART] == "cart-url-1"


def test_a_callback_names_the_cart_of_its_query(client, environ_of):
    response = client.post("/kustom/push?order_id=o1&cart=cart-q-1&token=wrong")
    assert response.status_code == 401
    assert environ_of()[ENVIRON_CART] == "cart-q-1"


def test_a_request_about_no_cart_names_none(client, environ_of):
    client.get("/healthz")
    assert ENVIRON_CART not in environ_of()
    client.post("/kustom/push?cart=%0Afake")
    assert ENVIRON_CART not in environ_of(), "only a well-formed cart id is named"


def _environ(path: str, query: str = "", **extra: str) -> dict[str, str]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": "10.0.0.7",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": "Kustom",
        **extra,
    }


def test_an_access_line_has_the_request_its_cart_and_no_token():
    environ = _environ("/kustom/push", "order_id=o-1&cart=cart-9&token=06ff0a1b2c")
    response = SimpleNamespace(status="200 OK", sent=22)
    fields = access_fields(response, environ, datetime.timedelta(milliseconds=12.34))
    assert fields == {
        "method": "POST",
        "path": "/kustom/push",
        "query": "order_id=o-1&cart=cart-9&token=***",
        "status": 200,
        "bytes": 22,
        "ms": 12.3,
        "remote": "10.0.0.7",
        "protocol": "HTTP/1.1",
        "user_agent": "Kustom",
        "cart": "cart-9",
    }


def test_the_access_log_takes_the_cart_the_app_bound_first_then_the_url():
    assert request_cart(_environ("/commerce/cart-mutation", **{ENVIRON_CART: "c-1"})) == "c-1"
    assert request_cart(_environ("/carts/c-2/kustom/confirm")) == "c-2"
    assert request_cart(_environ("/kustom/validate", "cart=c-3&token=x")) == "c-3"
    assert request_cart(_environ("/healthz")) is None
