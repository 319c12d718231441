"""Which of the Procfile's Celery processes this is, from its command line."""

from __future__ import annotations

from collections.abc import Sequence

CELERY_PROCESSES = ("worker", "beat", "flower")


def process_kind(argv: Sequence[str]) -> str | None:
    """``worker``, ``beat`` or ``flower`` for ``celery [options] <that command> ...``;
    None for any other command (``inspect``, ``call``, a test run)."""
    return next((arg for arg in argv[1:] if arg in CELERY_PROCESSES), None)
