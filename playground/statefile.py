"""A playground's state on disk: one JSON file, replaced atomically, written only on change.

The Kustom double and the commerce double keep their orders in memory; with a state file
they also write them here after every request that changed them, so that stopping and
starting ``make run`` (or ``kustom-playground serve --state-file``) finds them again. A
write goes to a temporary file in the same directory, is flushed to disk, and then renamed
over the old file: a crash leaves the old state or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


class StateFileError(Exception):
    """The state file exists but cannot be read back (not JSON, or not this format)."""


def read_state(path: str | os.PathLike[str], kind: str) -> dict[str, Any] | None:
    """The saved state of a ``kind`` ("kustom", "commerce"), or None when there is no file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateFileError(f"cannot read state file {file}: {e}") from e
    try:
        data = json.loads(text)
    except ValueError as e:
        raise StateFileError(f"state file {file} is not JSON ({e}); move it away") from e
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise StateFileError(f"state file {file} is not a {kind} playground's state")
    if data.get("format") != FORMAT_VERSION:
        raise StateFileError(f"state file {file} has format {data.get('format')!r}, not 1")
    state = data.get("state")
    if not isinstance(state, dict):
        raise StateFileError(f"state file {file} has no state object")
    return state


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` by ``text``: a temporary file beside it, fsync, rename."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class StateWriter:
    """Writes ``snapshot()`` to ``path`` when it differs from what was last written.

    ``snapshot`` must return a JSON-ready dict (taken under the state's own lock). The
    writer's lock keeps two requests' writes in order, so the newest snapshot lands last.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        kind: str,
        snapshot: Callable[[], dict[str, Any]],
        *,
        default: Callable[[Any], Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.kind = kind
        self._snapshot = snapshot
        self._default = default
        self._lock = threading.Lock()
        self._last: str | None = None

    def save(self) -> bool:
        """Write the state if it changed; True when a write happened."""
        with self._lock:
            document = {"kind": self.kind, "format": FORMAT_VERSION, "state": self._snapshot()}
            text = json.dumps(document, default=self._default, sort_keys=True)
            if text == self._last:
                return False
            write_atomically(self.path, text)
            self._last = text
            return True
