"""Which of the Procfile's Celery processes this is, from its command line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

CELERY_PROCESSES = ("worker", "beat", "flower")


def process_kind(argv: Sequence[str]) -> str | None:
    """``worker``, ``beat`` or ``flower`` for ``celery [options] <that command> ...`` (or
    ``python -m celery``, ``python -m workers``); None for any other command (``inspect``,
    ``call``) or program (a test run)."""
    if not argv or not _is_celery(argv[0]):
        return None
    return next((arg for arg in argv[1:] if arg in CELERY_PROCESSES), None)


def _is_celery(program: str) -> bool:
    path = PurePath(program)
    return path.name == "celery" or (path.name == "__main__.py" and path.parent.name == "celery")
