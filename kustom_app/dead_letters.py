"""Dead letters: the tasks that gave up, kept for operators and the sweeper.

``{prefix}:deadletter`` (list) holds one JSON entry per give-up (task, task id, when, error,
the task's ids), newest first, cut to a bounded length, expiring once nothing has given up
for as long as a cart lives. Tasks write it; the sweeper's run log and the
``kustom_dead_letter_entries`` gauge read it.
"""

from __future__ import annotations

from typing import Any

import redis


def dead_letters_key(prefix: str) -> str:
    """The dead-letter list of the service keyed under ``prefix``."""
    return f"{prefix}:deadletter"


class DeadLetters:
    def __init__(self, client: redis.Redis, *, prefix: str, ttl_seconds: int) -> None:
        self.redis = client
        self.key = dead_letters_key(prefix)
        self.ttl = ttl_seconds

    def record(self, entry: str, *, keep: int) -> None:
        """Put ``entry`` (JSON text) first and keep the newest ``keep``: a service that keeps
        failing holds a bounded list, and one that stopped failing has it expire."""
        pipe = self.redis.pipeline()
        pipe.lpush(self.key, entry)
        pipe.ltrim(self.key, 0, keep - 1)
        pipe.expire(self.key, self.ttl)
        pipe.execute()

    def count(self) -> int:
        """How many dead letters the list holds."""
        return int(self.redis.llen(self.key))

    def newest(self, count: int) -> list[Any]:
        """The newest ``count`` entries, newest first, as stored (JSON text, normally)."""
        return list(self.redis.lrange(self.key, 0, count - 1))
