"""Dead letters: the tasks that gave up, kept for operators and the sweeper.

``{prefix}:deadletter`` (list) holds one JSON entry per give-up (task, task id, when, error,
the task's ids), newest first, cut to a bounded length, expiring once nothing has given up
for as long as a cart lives. Tasks write it; the sweeper's run log, the
``kustom_dead_letter_entries`` gauge and the operator commands (`kustom-app deadletters`:
list, retry, drop; kustom_app/operators.py) read it. A dead letter of a cart also goes on
that cart's timeline, in the same pipeline.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from kustom_app.redis_scripts import as_text
from kustom_app.timeline import CartTimeline


def dead_letters_key(prefix: str) -> str:
    """The dead-letter list of the service keyed under ``prefix``."""
    return f"{prefix}:deadletter"


@dataclass(frozen=True)
class DeadLetter:
    """One entry as stored (``raw``, the exact text, is what removing it needs)."""

    id: str  # the task id, or a digest of the entry when it has none
    raw: str
    entry: dict[str, Any]

    @classmethod
    def parse(cls, raw: Any) -> DeadLetter:
        text = as_text(raw) or ""
        try:
            entry = json.loads(text)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            entry = {"error": "unreadable entry"}
        task_id = entry.get("taskId")
        digest = "h-" + hashlib.sha256(text.encode()).hexdigest()[:16]
        return cls(str(task_id) if task_id else digest, text, entry)

    @property
    def task(self) -> str:
        return str(self.entry.get("task") or "?")

    @property
    def cart_id(self) -> str | None:
        cart = self.entry.get("cart")
        return str(cart) if cart else None

    def mentions(self, ids: set[str]) -> bool:
        """Whether any of ``ids`` (a cart's id, its payment ids) is one of the entry's ids."""
        values = [v for k, v in self.entry.items() if k not in ("error", "at", "task")]
        values += list(self.entry.get("args") or [])
        return any(str(v) in ids for v in values if isinstance(v, str | int))


class DeadLetters:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl_seconds: int,
        timeline: CartTimeline | None = None,
    ) -> None:
        self.redis = client
        self.key = dead_letters_key(prefix)
        self.ttl = ttl_seconds
        self.timeline = timeline

    def record(self, entry: str, *, keep: int, cart_id: str | None = None) -> None:
        """Put ``entry`` (JSON text) first and keep the newest ``keep``: a service that keeps
        failing holds a bounded list, and one that stopped failing has it expire. With
        ``cart_id`` the give-up also goes on that cart's timeline."""
        pipe = self.redis.pipeline()
        pipe.lpush(self.key, entry)
        pipe.ltrim(self.key, 0, keep - 1)
        pipe.expire(self.key, self.ttl)
        if cart_id and self.timeline is not None:
            letter = DeadLetter.parse(entry)
            error = str(letter.entry.get("error") or "").partition(":")[0]
            self.timeline.add(
                pipe,
                cart_id,
                "deadletter",
                at=int(time.time() * 1000),
                task=letter.task,
                id=letter.id,
                error=error,
            )
        pipe.execute()

    def all(self) -> list[DeadLetter]:
        """Every entry, newest first."""
        return [DeadLetter.parse(raw) for raw in self.redis.lrange(self.key, 0, -1)]

    def find(self, letter_id: str) -> DeadLetter | None:
        """The newest entry with this id, if any."""
        return next((letter for letter in self.all() if letter.id == letter_id), None)

    def remove(self, letter: DeadLetter) -> bool:
        """Take one copy of the entry off the list; False when it was gone already."""
        return int(self.redis.lrem(self.key, 1, letter.raw)) > 0

    def count(self) -> int:
        """How many dead letters the list holds."""
        return int(self.redis.llen(self.key))

    def newest(self, count: int) -> list[Any]:
        """The newest ``count`` entries, newest first, as stored (JSON text, normally)."""
        return list(self.redis.lrange(self.key, 0, count - 1))
