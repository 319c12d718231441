"""Logging: one line per event, the same format in every process (web, worker, beat, the
access log), JSON when ``LOG_FORMAT=json``, text otherwise.

Events are named like ``kustom.sync.pushed`` and carry structured fields::

    log = event_log(__name__)
    log.info("kustom.sync.pushed", cart=cart_id, order=order_id, hash=payload_hash)

A JSON line holds the fields as keys (``{"event": "kustom.sync.pushed", "cart": ...}``); a
text line, and the record's message (what ``caplog`` and grep see), is
``kustom.sync.pushed cart=... order=... hash=...``. The fields are ids (cart, order,
correlation id, task id), never credentials, addresses or names.

Two things hold for every line, whoever wrote it (Celery, gunicorn, requests' exceptions):

- the cart and the task being worked on (`bind_cart`, `bind_task`: a context variable set
  per request and per task) are on it, as ``cart``/``task_id``;
- secrets are masked (`redact`): query parameters such as the callback ``token``,
  Authorization header values and URL passwords.

Celery's and gunicorn's lines come through the same formatters: workers/logging_setup.py,
webhooks/access_log.py.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

# The record attributes an event carries (set through `extra`, read by the formatters).
EVENT = "kustom_event"
FIELDS = "kustom_fields"
_CONTEXT = "kustom_context"

_cart: contextvars.ContextVar[str | None] = contextvars.ContextVar("kustom_log_cart", default=None)
_task: contextvars.ContextVar[str | None] = contextvars.ContextVar("kustom_log_task", default=None)

MASK = "***"
# A parameter whose name says it is a credential (the callback `token`, signatures,
# passwords, secrets, API keys ...), in a query string (`&token=...`) or a `name=value` pair.
_SECRET_PARAMETER = re.compile(
    r"(?i)(?<![\w.\-\[\]])((?:[\w.\-\[\]]*(?:token|signature|password|passwd|secret|credential"
    r"|apikey|api_key|access_key|private_key)[\w.\-\[\]]*|sig|pwd|auth|key)=)([^&\s\"'#\\]+)"
)
# An Authorization header's value, however it is printed (`Authorization: Basic ...`, a
# headers dict's repr, a JSON object) and a bare Basic/Bearer credential.
_AUTHORIZATION = re.compile(
    r"(?i)((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(basic|bearer|digest|token)\s+)?"
    r"[^\s\"',;}]+"
)
_BARE_CREDENTIAL = re.compile(r"\b(Basic|Bearer) [A-Za-z0-9+/=._~-]{6,}")
# A URL's password (``redis://:secret@host``, ``https://user:secret@host``).
_URL_PASSWORD = re.compile(r"(\w://[^\s:/@\"']*:)[^\s/@\"']+@")


def redact(text: str) -> str:
    """``text`` with every secret query parameter, Authorization value and URL password
    masked: a log
    line must never carry a credential (contract 6b), whoever wrote the line."""
    if "=" in text:
        text = _SECRET_PARAMETER.sub(rf"\1{MASK}", text)
    if "uthorization" in text or "UTHORIZATION" in text:
        text = _AUTHORIZATION.sub(_masked_authorization, text)
    if "Basic " in text or "Bearer " in text:
        text = _BARE_CREDENTIAL.sub(rf"\1 {MASK}", text)
    if "@" in text:
        text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    return text


def _masked_authorization(match: re.Match[str]) -> str:
    scheme = match.group(2)
    return f"{match.group(1)}{scheme + ' ' if scheme else ''}{MASK}"


def bind_cart(cart_id: str | None) -> None:
    """Mark what this request or task does from now on as about ``cart_id``: every line
    logged in this context carries it (`unbind`, or the next `bind_cart`, ends it)."""
    _cart.set(cart_id or None)


def bind_task(task_id: str | None) -> None:
    """Mark the lines of this context as the work of Celery task ``task_id``."""
    _task.set(task_id or None)


def bound_cart() -> str | None:
    """The cart this request or task is about, if one was bound."""
    return _cart.get()


def unbind() -> None:
    """Forget the cart and task: a thread or process goes on to unrelated work."""
    _cart.set(None)
    _task.set(None)


@contextmanager
def cart_context(cart_id: str | None) -> Iterator[None]:
    """Lines logged inside are about ``cart_id``; the previous binding comes back after."""
    token = _cart.set(cart_id or None)
    try:
        yield
    finally:
        _cart.reset(token)


def current_context() -> dict[str, str]:
    """The cart and task bound in this context, as the lines logged here carry them."""
    context = {}
    cart = _cart.get()
    if cart:
        context["cart"] = cart
    task = _task.get()
    if task:
        context["task_id"] = task
    return context


# What `Logger._log` takes itself; every other keyword of an event call is a field.
_LOGGING_KEYWORDS = frozenset({"exc_info", "stack_info", "stacklevel", "extra"})

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter


class EventLog(_Adapter):
    """A logger whose calls name an event and give its fields as keywords.

    ``log.warning("kustom.sync.order_gone", cart=cart_id, order=order_id)``
    """

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        fields = {key: kwargs.pop(key) for key in list(kwargs) if key not in _LOGGING_KEYWORDS}
        extra = dict(kwargs.get("extra") or {})
        extra[EVENT] = msg
        extra[FIELDS] = fields
        kwargs["extra"] = extra
        return event_line(msg, fields), kwargs


def event_log(name: str) -> EventLog:
    """The event logger for module ``name`` (its records come from ``logging.getLogger(name)``)."""
    return EventLog(logging.getLogger(name), {})


def text_value(value: object) -> str:
    """A field's value on a text line: a text as is (spaces included: the last field of a
    line may be a sentence), unless it holds a line break or another control character —
    then JSON-quoted, so no value can start a fake line —; a list or an object as JSON."""
    if isinstance(value, str):
        if value.isprintable():
            return value
        return json.dumps(value)
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def event_line(event: str, fields: Mapping[str, object]) -> str:
    """``event key=value ...``: an event as its text line (and its record's message)."""
    parts = [event, *(f"{key}={text_value(value)}" for key, value in fields.items())]
    return " ".join(parts)


class _ContextFilter(logging.Filter):
    """Stamps each record with the cart and task of the context that logged it (before any
    handler formats it, which might be on another thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, _CONTEXT):
            setattr(record, _CONTEXT, current_context())
        return True


def _record_context(record: logging.LogRecord) -> dict[str, str]:
    context = getattr(record, _CONTEXT, None)
    return current_context() if context is None else context


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> <event key=value ...>``, plus the cart and task of the
    context when the event does not name them itself; secrets masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, FIELDS, None) or {}
        extra = [
            f"{k}={text_value(v)}" for k, v in _record_context(record).items() if k not in fields
        ]
        if extra:
            first, newline, rest = line.partition("\n")
            line = f"{first} {' '.join(extra)}{newline}{rest}"
        return redact(line)


_OUR_ATTRIBUTES = [EVENT, FIELDS, _CONTEXT]


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object a line (python-json-logger): ``ts``, ``level``, ``logger``, then
    ``event`` and its fields — or ``msg`` for a line that is no event (Celery's, gunicorn's)
    —, the context's ``cart`` and ``task_id``, ``exc`` for a traceback; secrets masked."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"name": "logger", "message": "msg", "exc_info": "exc"},
            # Only our fields: other libraries' `extra` (Celery's task `data`) stays out.
            reserved_attrs=[*RESERVED_ATTRS, *_OUR_ATTRIBUTES, "data"],
            timestamp="ts",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        entry: dict[str, Any] = {
            "ts": log_data.pop("ts"),
            "level": log_data.pop("levelname", record.levelname).lower(),
            "logger": log_data.pop("logger", record.name),
        }
        event = getattr(record, EVENT, None)
        if event:
            entry["event"] = event
            log_data.pop("msg", None)
            entry.update(getattr(record, FIELDS, None) or {})
        for key, value in _record_context(record).items():
            entry.setdefault(key, value)
        entry.update(log_data)
        log_data.clear()
        log_data.update(entry)

    def serialize_log_record(self, log_data: dict[str, Any]) -> str:
        return redact(super().serialize_log_record(log_data))


def formatter_for(log_format: str) -> logging.Formatter:
    """The service's formatter for ``log_format`` (`Settings.log_format`): JSON for
    ``json``, text otherwise."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def install_formatter(
    handler: logging.Handler, log_format: str, filters: Iterable[logging.Filter] = ()
) -> logging.Handler:
    """Give ``handler`` the service's format, context stamping and ``filters``."""
    handler.setFormatter(formatter_for(log_format))
    for existing in list(handler.filters):
        if isinstance(existing, _ContextFilter) or getattr(existing, "_kustom_app", False):
            handler.removeFilter(existing)
    for extra_filter in filters:
        extra_filter._kustom_app = True  # type: ignore[attr-defined]
        handler.addFilter(extra_filter)
    handler.addFilter(_ContextFilter())
    return handler


def configure_logging(
    log_format: str, level: int = logging.INFO, filters: Iterable[logging.Filter] = ()
) -> None:
    """Install the service's log format (`Settings.log_format`: ``json``, else text) on the
    root logger (idempotent): one handler, on stderr, for every library's lines. Python's
    warnings go through it too, so no line of the process is left in another format."""
    handler = install_formatter(logging.StreamHandler(), log_format, filters)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_kustom_app", False):
            root.removeHandler(existing)
    handler._kustom_app = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
