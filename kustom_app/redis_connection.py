"""Connecting to Redis: a client from the service's REDIS_URL, which may name Sentinels.

Web, worker and beat build their client here (`kustom_app.services.Services.redis`);
Celery's broker takes the same URL, with the Sentinel master's name as an option.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from redis.sentinel import Sentinel


def redis_from_url(url: str, **options: Any) -> redis.Redis:
    """A client for ``redis://``/``rediss://``/``unix://`` URLs, or for Sentinel.

    Sentinel URLs use Celery's form, so one URL can serve both REDIS_URL and the broker:
    ``sentinel://host1:26379;sentinel://host2:26379/0?master_name=mymaster``.
    """
    if not url.startswith("sentinel://"):
        return redis.Redis.from_url(url, **options)
    sentinels: list[tuple[str, int]] = []
    db, master = 0, "mymaster"
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        sentinels.append((parsed.hostname or "localhost", parsed.port or 26379))
        if parsed.path.strip("/"):
            db = int(parsed.path.strip("/"))
        master = parse_qs(parsed.query).get("master_name", [master])[0]
    password = urlsplit(url.split(";")[0]).password
    sentinel = Sentinel(
        sentinels,
        socket_timeout=options.get("socket_timeout", 5),
        sentinel_kwargs={"socket_timeout": options.get("socket_connect_timeout", 2)},
    )
    return sentinel.master_for(master, db=db, password=password, **options)


def sentinel_master_name(url: str) -> str | None:
    """The ``master_name`` of a Sentinel URL (Celery's broker needs it as an option)."""
    if not url.startswith("sentinel://"):
        return None
    for part in url.split(";"):
        names = parse_qs(urlsplit(part.strip()).query).get("master_name")
        if names:
            return names[0]
    return "mymaster"
