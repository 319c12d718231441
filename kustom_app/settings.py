"""Service settings, read from the environment in exactly one place.

Every process (web, worker, beat, flower) builds one `Settings` at start. Secrets that
production cannot run without fail loudly here rather than on the first request.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LIVE_KUSTOM_API_URL = "https://api.kustom.co"
PLAYGROUND_KUSTOM_API_URL = "https://api.playground.kustom.co"
# Used only outside production mode so a local run works without configuration.
DEVELOPMENT_CALLBACK_SECRET = "kustom-app-development-callback-secret"  # noqa: S105
# A syncKustomOrder job that finds the cart's push lease held comes back when the lease is
# over plus up to this much jitter (workers/tasks.py): its longest countdown.
SYNC_BUSY_JITTER_SECONDS = 0.5


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the process must not start."""


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from e


def _count(env: Mapping[str, str], name: str, default: int, *, allow_zero: bool = False) -> int:
    """A whole number: positive, or non-negative where 0 means "none"."""
    value = _int(env, name, default)
    if value < 0 or (value == 0 and not allow_zero):
        rule = "non-negative" if allow_zero else "positive"
        raise ConfigurationError(f"{name} must be a {rule} whole number, got {env[name]!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from e


def _seconds(
    env: Mapping[str, str], name: str, default: float, *, allow_zero: bool = False
) -> float:
    """A duration in seconds: a positive finite number, or non-negative where 0 means
    "don't wait"."""
    value = _float(env, name, default)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        rule = "non-negative" if allow_zero else "positive"
        raise ConfigurationError(f"{name} must be a {rule} number of seconds, got {env[name]!r}")
    return value


def _on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw not in ("on", "off"):
        raise ConfigurationError(f"{name} must be on or off, got {env[name]!r}")
    return raw == "on"


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if not 1 <= value <= 65535:
        raise ConfigurationError(
            f"{name} must be a whole number from 1 to 65535, got {env[name]!r}"
        )
    return value


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://localhost:6379/0"
    celery_broker_url: str = "redis://localhost:6379/0"
    kustom_api_url: str = PLAYGROUND_KUSTOM_API_URL
    kustom_username: str | None = None
    kustom_password: str | None = field(default=None, repr=False)
    public_base_url: str = "http://localhost:8000"
    commerce_api_url: str | None = None
    commerce_webhook_secret: str | None = field(default=None, repr=False)
    callback_secret: str = field(default=DEVELOPMENT_CALLBACK_SECRET, repr=False)
    validation_rules: tuple[str, ...] = ()
    validation_reject: int = 400
    cors_allowed_origins: tuple[str, ...] = ()
    production: bool = False
    # Tunables (documented in the README; defaults chosen for Kustom's limits).
    key_prefix: str = "kustom"
    cart_ttl_seconds: int = 72 * 3600  # Kustom's 48 h order life plus a day of margin
    order_max_age_seconds: int = 48 * 3600
    kustom_connect_timeout: float = 3.05
    kustom_read_timeout: float = 10.0
    # How long after Kustom got a request it may still act on it (Kustom's documented 30 s
    # request timeout): an update without an answer may land until then (kustom_app/sync.py).
    kustom_request_lifetime_seconds: float = 30.0
    commerce_connect_timeout: float = 3.05
    commerce_read_timeout: float = 10.0
    visibility_timeout: int = 900
    reconcile_interval_seconds: float = 60.0
    sync_stale_seconds: int = 60
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    max_retries: int = 12
    reconcile_batch: int = 200
    order_record_ttl_seconds: int = 180 * 86400  # captures and refunds come weeks later
    confirm_wait_seconds: float = 3.0
    completion_lease_seconds: float = 60.0
    sync_lease_seconds: float = 45.0  # longer than one Kustom call (3.05 s + 10 s) and a burst
    payment_lease_seconds: float = 60.0  # longer than a GET and a POST to Kustom
    payment_requeue_after_seconds: float = 60.0
    task_time_limit_seconds: float = 120.0
    task_soft_time_limit_seconds: float = 100.0
    # The sweeper's steps 3 and 4 (kustom_app/reconcile.py).
    reconcile_unacknowledged_after_seconds: float = 5 * 60.0
    reconcile_open_order_after_seconds: float = 10 * 60.0  # Kustom pushes ~2 min after paying
    reconcile_open_order_max_interval_seconds: float = 4 * 3600.0
    # Server-Sent Event streams each hold a gunicorn thread: leave some for other requests.
    events_max_streams: int = 12
    # The shortcuts that lean on library internals (the fastpath_* modules); off, each
    # goes the plain library way.
    fast_paths: bool = True

    def __post_init__(self) -> None:
        self._check_visibility_timeout()
        if self.task_soft_time_limit_seconds >= self.task_time_limit_seconds:
            raise ConfigurationError(
                f"TASK_SOFT_TIME_LIMIT_SECONDS ({self.task_soft_time_limit_seconds:g}) must "
                f"stay below TASK_TIME_LIMIT_SECONDS ({self.task_time_limit_seconds:g})"
            )
        if self.reconcile_open_order_max_interval_seconds < self.reconcile_open_order_after_seconds:
            raise ConfigurationError(
                "RECONCILE_OPEN_ORDER_MAX_INTERVAL_SECONDS "
                f"({self.reconcile_open_order_max_interval_seconds:g}) must not be below "
                f"RECONCILE_OPEN_ORDER_AFTER_SECONDS ({self.reconcile_open_order_after_seconds:g})"
            )

    def _check_visibility_timeout(self) -> None:
        """Refuse anything that can keep a task's message unacknowledged as long as the
        broker's visibility timeout: Redis would hand it to a second worker while the first
        still holds it, a duplicate run. A retried task's message is unacknowledged for its
        countdown (it waits on a worker) and then for its run, so a countdown counts with
        the time limit."""
        run = self.task_time_limit_seconds
        limits = {
            "TASK_RETRY_MAX_SECONDS + TASK_TIME_LIMIT_SECONDS (a retry's longest countdown, "
            "then its run)": self.retry_max_seconds + run,
            # (This also bounds a sync job waiting out an update without an answer, for up to
            # KUSTOM_REQUEST_LIFETIME_SECONDS: it looks again at most a lease later each time,
            # workers/tasks.py.)
            f"SYNC_LEASE_SECONDS + {SYNC_BUSY_JITTER_SECONDS:g} s + TASK_TIME_LIMIT_SECONDS "
            "(a busy sync job's countdown, then its run)": (
                self.sync_lease_seconds + SYNC_BUSY_JITTER_SECONDS + run
            ),
            "COMPLETION_LEASE_SECONDS": self.completion_lease_seconds,
            "CONFIRM_WAIT_SECONDS": self.confirm_wait_seconds,
            "PAYMENT_LEASE_SECONDS": self.payment_lease_seconds,
        }
        for name, seconds in limits.items():
            if seconds >= self.visibility_timeout:
                raise ConfigurationError(
                    f"{name} is {seconds:g} s: it must stay below CELERY_VISIBILITY_TIMEOUT "
                    f"({self.visibility_timeout} s), or a second worker gets the task's message "
                    "while the first still holds it"
                )

    @property
    def kustom_configured(self) -> bool:
        return bool(self.kustom_username and self.kustom_password)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        port = _port(env, "PORT", 8000)
        # Read by gunicorn and Flower (Procfile), checked here so a bad value stops them too.
        _port(env, "FLOWER_PORT", 5555)
        _count(env, "WEB_CONCURRENCY", 2)
        redis_url = env.get("REDIS_URL") or "redis://localhost:6379/0"
        kustom_api_url = (env.get("KUSTOM_API_URL") or PLAYGROUND_KUSTOM_API_URL).rstrip("/")
        production = (env.get("APP_ENV") or "").lower() == "production" or (
            kustom_api_url == LIVE_KUSTOM_API_URL
        )
        callback_secret = env.get("CALLBACK_SECRET") or ""
        if not callback_secret:
            if production:
                raise ConfigurationError(
                    "CALLBACK_SECRET is required in production mode "
                    "(APP_ENV=production or the live Kustom API)"
                )
            log.warning("settings.callback_secret.development_default")
            callback_secret = DEVELOPMENT_CALLBACK_SECRET
        visibility_timeout = _count(env, "CELERY_VISIBILITY_TIMEOUT", 900)
        reject = _int(env, "KUSTOM_VALIDATION_REJECT", 400)
        if reject not in (400, 303):
            raise ConfigurationError("KUSTOM_VALIDATION_REJECT must be 400 or 303")
        return cls(
            redis_url=redis_url,
            celery_broker_url=env.get("CELERY_BROKER_URL") or redis_url,
            kustom_api_url=kustom_api_url,
            kustom_username=env.get("KUSTOM_USERNAME") or None,
            kustom_password=env.get("KUSTOM_PASSWORD") or None,
            public_base_url=(env.get("PUBLIC_BASE_URL") or f"http://localhost:{port}").rstrip("/"),
            commerce_api_url=(env.get("COMMERCE_API_URL") or "").rstrip("/") or None,
            commerce_webhook_secret=env.get("COMMERCE_WEBHOOK_SECRET") or None,
            callback_secret=callback_secret,
            validation_rules=_csv(env.get("KUSTOM_VALIDATION_RULES")),
            validation_reject=reject,
            cors_allowed_origins=_csv(env.get("CORS_ALLOWED_ORIGINS")),
            production=production,
            key_prefix=env.get("KUSTOM_KEY_PREFIX") or "kustom",
            kustom_read_timeout=_seconds(env, "KUSTOM_READ_TIMEOUT", 10.0),
            kustom_request_lifetime_seconds=_seconds(env, "KUSTOM_REQUEST_LIFETIME_SECONDS", 30.0),
            commerce_read_timeout=_seconds(env, "COMMERCE_READ_TIMEOUT", 10.0),
            visibility_timeout=visibility_timeout,
            reconcile_interval_seconds=_seconds(env, "RECONCILE_INTERVAL_SECONDS", 60.0),
            sync_stale_seconds=_count(env, "SYNC_STALE_SECONDS", 60),
            retry_base_seconds=_seconds(env, "TASK_RETRY_BASE_SECONDS", 1.0),
            retry_max_seconds=_seconds(env, "TASK_RETRY_MAX_SECONDS", 300.0),
            max_retries=_count(env, "TASK_MAX_RETRIES", 12, allow_zero=True),
            reconcile_batch=_count(env, "RECONCILE_BATCH", 200),
            completion_lease_seconds=_seconds(env, "COMPLETION_LEASE_SECONDS", 60.0),
            sync_lease_seconds=_seconds(env, "SYNC_LEASE_SECONDS", 45.0),
            payment_lease_seconds=_seconds(env, "PAYMENT_LEASE_SECONDS", 60.0),
            payment_requeue_after_seconds=_seconds(env, "PAYMENT_REQUEUE_AFTER_SECONDS", 60.0),
            task_time_limit_seconds=_seconds(env, "TASK_TIME_LIMIT_SECONDS", 120.0),
            task_soft_time_limit_seconds=_seconds(env, "TASK_SOFT_TIME_LIMIT_SECONDS", 100.0),
            reconcile_unacknowledged_after_seconds=_seconds(
                env, "RECONCILE_UNACKNOWLEDGED_AFTER_SECONDS", 5 * 60.0
            ),
            reconcile_open_order_after_seconds=_seconds(
                env, "RECONCILE_OPEN_ORDER_AFTER_SECONDS", 10 * 60.0
            ),
            reconcile_open_order_max_interval_seconds=_seconds(
                env, "RECONCILE_OPEN_ORDER_MAX_INTERVAL_SECONDS", 4 * 3600.0
            ),
            events_max_streams=_count(
                env, "EVENTS_MAX_STREAMS", max(1, _count(env, "WEB_THREADS", 16) - 4)
            ),
            confirm_wait_seconds=_seconds(env, "CONFIRM_WAIT_SECONDS", 3.0, allow_zero=True),
            fast_paths=_on_off(env, "KUSTOM_FAST_PATHS", True),
        )
