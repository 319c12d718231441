"""The Kustom double's Flask app: one state, the API, the test control, the shopper page."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from playground.kustom.answers import DoubleError
from playground.kustom.api import EXTENSION_KEY, json_response, register_api, register_control
from playground.kustom.control import register_playground_control
from playground.kustom.shopper_page import register_shopper_page
from playground.kustom.state import KustomDoubleState


def create_app(**settings: Any) -> Flask:
    """The Kustom double as a Flask app; its state is ``app.extensions["kustom_double"]``.

    ``settings`` are :class:`KustomDoubleState`'s, all optional: ``username`` and
    ``password`` (HTTP Basic; ``playground`` both), ``latency_seconds`` added to every API
    call, ``base_url`` (default: the request's host URL) that prefixes the ``Location``
    headers and the iframe URL of the html snippet, ``push_delay_seconds`` from the
    shopper's Pay to the push (Kustom pushes seconds after the redirect to the
    confirmation; default 2), ``update_delay_seconds`` added to every order update's
    answer, ``order_lifetime_seconds`` (48 h) after which an untouched unpaid order is
    gone, and ``state_file``: where the orders are kept across restarts (JSON, rewritten
    after every request that changed them).
    """
    app = Flask("playground.kustom")
    # The templates render exactly as written, final newline included.
    app.jinja_env.keep_trailing_newline = True
    app.extensions[EXTENSION_KEY] = KustomDoubleState(**settings)

    register_api(app)
    register_control(app)
    register_playground_control(app)
    register_shopper_page(app)

    state = app.extensions[EXTENSION_KEY]

    @app.after_request
    def _keep_state(response: Response) -> Response:
        if request.method != "GET":
            state.save_state()
        return response

    @app.errorhandler(DoubleError)
    def _double_error(exc: DoubleError) -> Response:
        return json_response(exc.status, {"error": str(exc)})

    return app
