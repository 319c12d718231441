"""Logging: one line per event, key=value context, JSON when LOG_FORMAT=json.

Events are named like ``kustom.sync.pushed`` and carry ids (cart, order, correlation id,
task id), never credentials, addresses or names: the messages are built that way at each
call site; this module only decides the line format.
"""

from __future__ import annotations

import json
import logging
import re
import time

_PAIR = re.compile(r"(\w+)=(\S+)")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        event, _, rest = message.partition(" ")
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": event,
        }
        entry.update(dict(_PAIR.findall(rest)))
        if rest:
            # The whole context as written: a value with spaces (a mismatch's reasons, an
            # operator's reason, the sweeper's newest dead letters) is only whole here.
            entry["msg"] = rest
        task_id = getattr(record, "task_id", None)
        if task_id:
            entry.setdefault("task", task_id)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Install the service's log format (`Settings.log_format`: ``json``, else text) on the
    root logger (idempotent)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_kustom_app", False):
            root.removeHandler(existing)
    handler._kustom_app = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
