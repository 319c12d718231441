"""gunicorn's logging in the service's format (gunicorn.conf.py: ``logger_class``).

gunicorn's own lines (``gunicorn.error``) and its access log (``gunicorn.access``) come out
as every other line of the service does (`kustom_app.logs`: JSON with ``LOG_FORMAT=json``,
else text). An access line is an event, ``http.access``, with the request's method, path,
query (secrets masked: a Kustom callback's ``token``), status, size and duration, and the
cart it was about (what the app bound, `webhooks.request_logging`, else the URL's).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from gunicorn.glogging import Logger

from kustom_app.logs import EventLog, install_formatter, redact
from kustom_app.settings import Settings

# Where the app leaves the cart a request was about (`webhooks.request_logging`).
ENVIRON_CART = "kustom_app.cart"
ACCESS_EVENT = "http.access"
_PATH_CART = re.compile(r"^/carts/([^/]+)/")


def request_cart(environ: dict[str, Any]) -> str | None:
    """The cart a request was about: as the app bound it, else as its URL names it."""
    bound = environ.get(ENVIRON_CART)
    if bound:
        return str(bound)
    match = _PATH_CART.match(environ.get("PATH_INFO") or "")
    if match:
        return match.group(1)
    carts = parse_qs(environ.get("QUERY_STRING") or "").get("cart")
    return carts[0] if carts else None


def access_fields(resp: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
    """An access line's fields; the query's secrets masked here already."""
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    fields: dict[str, Any] = {
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
    }
    query = environ.get("QUERY_STRING")
    if query:
        fields["query"] = redact("?" + query)[1:]
    fields.update(
        status=int(status) if str(status).isdigit() else status,
        bytes=getattr(resp, "sent", None),
        ms=round(request_time.total_seconds() * 1000, 1),
        remote=environ.get("REMOTE_ADDR"),
        protocol=environ.get("SERVER_PROTOCOL"),
        user_agent=environ.get("HTTP_USER_AGENT"),
    )
    cart = request_cart(environ)
    if cart:
        fields["cart"] = cart
    return fields


class ServiceLogger(Logger):
    """gunicorn's logger, writing the service's format (`LOG_FORMAT`)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        log_format = Settings.from_env().log_format
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    install_formatter(handler, log_format)
        self._access_events = EventLog(self.access_log, {})

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        try:
            self._access_events.info(ACCESS_EVENT, **access_fields(resp, environ, request_time))
        except Exception:
            self.exception("gunicorn.access_log_failed")
