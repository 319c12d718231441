"""`kustom-app doctor`: is this deployment's configuration one that works?

Each check answers pass or fail with a reason an operator can act on, and never shows a
secret (URLs are shown without their credentials). The checks talk to what the service
talks to, the way it does: Redis, the broker (the caller's check: the broker is Celery's,
webhooks/operators.py), Kustom with the service's credentials, the commerce backend with
the service's signature.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis

from kustom_app.checkout import callbacks_allowed
from kustom_app.commerce import CommerceRejected, CommerceUnavailable
from kustom_app.kustom import KustomRejected, KustomUnavailable
from kustom_app.services import Services
from kustom_app.settings import DEVELOPMENT_CALLBACK_SECRET


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def shown_url(url: str | None) -> str:
    """A URL without user name or password (what an operator may see and paste)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _never_an_id() -> str:
    """An id no real order or cart has: asking for it tells "refused" from "not found"."""
    return f"kustom-app-doctor-{uuid.uuid4()}"


def check_redis(services: Services) -> Check:
    url = shown_url(services.settings.redis_url)
    try:
        services.redis.ping()
    except redis.RedisError as e:
        return Check("redis", False, f"{url} unreachable: {type(e).__name__}", {"url": url})
    return Check("redis", True, f"{url} answers PING", {"url": url})


def check_kustom(services: Services) -> Check:
    """A read of a checkout order that cannot exist: Kustom answers 404 to good credentials
    and 401 to wrong ones ("Get order details", readOrderMerchant: 401 "You were not
    authorized", 403 "Merchant was not activated", 404 "We did not find any order with
    given ID"; https://docs.klarna.com/api/checkout/#operation/readOrderMerchant, kept in
    tests/fixtures/openapi/kustom-checkout-api.yml)."""
    s = services.settings
    details: dict[str, Any] = {"url": shown_url(s.kustom_api_url), "username": s.kustom_username}
    if not s.kustom_configured:
        return Check("kustom", False, "KUSTOM_USERNAME or KUSTOM_PASSWORD is not set", details)
    return _read_of_nothing(
        "kustom",
        lambda: services.kustom.get_order(_never_an_id(), by="doctor"),
        (KustomRejected, KustomUnavailable),
        details,
        accepted="credentials accepted (404 for an unknown order)",
        refused="credentials refused ({status}): check KUSTOM_USERNAME/KUSTOM_PASSWORD",
        found="answered 200 for an order that cannot exist",
    )


def check_commerce(services: Services) -> Check:
    """A signed GET of a cart that cannot exist: 404 says the backend is reachable and took
    the signature; 401 says COMMERCE_WEBHOOK_SECRET differs from the backend's."""
    s = services.settings
    details: dict[str, Any] = {"url": shown_url(s.commerce_api_url)}
    commerce = services.commerce
    if commerce is None:
        return Check("commerce", False, "COMMERCE_API_URL is not set: no cart completes", details)
    if not s.commerce_webhook_secret:
        return Check(
            "commerce", False, "COMMERCE_WEBHOOK_SECRET is not set: calls go unsigned", details
        )
    return _read_of_nothing(
        "commerce",
        lambda: commerce.get_cart(_never_an_id(), timeout=s.commerce_read_timeout),
        (CommerceRejected, CommerceUnavailable),
        details,
        accepted="reachable, signature accepted (404)",
        refused="signature refused ({status}): COMMERCE_WEBHOOK_SECRET differs",
        found="answered 200 for a cart that cannot exist",
    )


def _read_of_nothing(
    name: str,
    read: Callable[[], object],
    errors: tuple[type[Exception], type[Exception]],
    details: dict[str, Any],
    *,
    accepted: str,
    refused: str,
    found: str,
) -> Check:
    """Read something that cannot exist: 404 passes (reachable, and it took who we are),
    401/403 fails as ``refused``, no answer as unreachable. ``errors``: the client's
    (rejected, unavailable) exceptions, both with the HTTP ``status`` (None without one)."""
    rejected, unavailable = errors
    try:
        read()
    except rejected as e:
        status = getattr(e, "status", None)
        details["status"] = status
        if status == 404:
            return Check(name, True, accepted, details)
        if status in (401, 403):
            return Check(name, False, refused.format(status=status), details)
        return Check(name, False, f"unexpected answer {status}", details)
    except unavailable as e:
        status = getattr(e, "status", None)
        details["status"] = status
        cause = f"answered {status}" if status else "no answer (connection or timeout)"
        return Check(name, False, f"unreachable: {cause}", details)
    return Check(name, False, found, details)


def check_public_base_url(services: Services) -> Check:
    """Kustom calls back only over https (kustom_app.checkout.callbacks_allowed); production
    needs it whatever Kustom it talks to."""
    s = services.settings
    url = s.public_base_url
    details = {"url": url, "production": s.production, "kustomApiUrl": s.kustom_api_url}
    https = urlsplit(url).scheme == "https"
    if https:
        return Check("public_base_url", True, "https", details)
    if s.production:
        return Check("public_base_url", False, "must be https in production", details)
    if not callbacks_allowed(url, s.kustom_api_url):
        return Check(
            "public_base_url", False, "Kustom calls back only over https: must be https", details
        )
    return Check(
        "public_base_url", True, "http is fine outside production with a local Kustom", details
    )


def check_visibility_timeout(services: Services) -> Check:
    """What can hold a task's message, against the broker's visibility timeout (Settings
    refuses to start when one reaches it; this shows the margins)."""
    s = services.settings
    limits = s.visibility_limits()
    longest = max(limits.values())
    details = {
        "visibilityTimeoutSeconds": s.visibility_timeout,
        "limits": limits,
        "marginSeconds": s.visibility_timeout - longest,
    }
    over = [name for name, seconds in limits.items() if seconds >= s.visibility_timeout]
    if over:
        return Check("visibility_timeout", False, f"at or above it: {'; '.join(over)}", details)
    reason = f"longest hold {longest:g} s < CELERY_VISIBILITY_TIMEOUT {s.visibility_timeout} s"
    return Check("visibility_timeout", True, reason, details)


def check_callback_secret(services: Services) -> Check:
    if services.settings.callback_secret == DEVELOPMENT_CALLBACK_SECRET:
        return Check("callback_secret", False, "CALLBACK_SECRET is not set (development default)")
    return Check("callback_secret", True, "set")


def run_checks(services: Services, broker: Callable[[], Check]) -> list[Check]:
    """Every check, in the order an operator fixes things: storage, then the outside."""
    return [
        check_redis(services),
        broker(),
        check_kustom(services),
        check_commerce(services),
        check_public_base_url(services),
        check_visibility_timeout(services),
        check_callback_secret(services),
    ]
