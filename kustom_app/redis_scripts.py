"""The stores' Lua scripts on Redis: loading them and reading their replies.

Every multi-step change of a store (`kustom_app.state.CartStore`,
`kustom_app.ordermanagement.PaymentStore`) is one script under ``kustom_app/lua/``, run by
``EVALSHA`` and loaded again if Redis lost it. The per-event and per-push scripts may run
on a connection of the calling thread's own instead (kustom_app/fastpath_scripts.py).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis


def as_text(value: Any) -> str | None:
    """A Redis reply as text (None stays None)."""
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def load_script(client: redis.Redis, name: str) -> Any:
    """Register ``kustom_app/lua/<name>.lua`` with the client (EVALSHA, reloaded if flushed)."""
    source = resources.files("kustom_app").joinpath(f"lua/{name}.lua").read_text()
    return client.register_script(source)
