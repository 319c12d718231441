"""Service settings: one table, read from the environment in exactly one place.

Each setting is a field of `Settings` with its environment name and its default beside it
(`setting`); a field without an environment name is a tunable set in code only. Every
process (web, worker, beat, flower) builds one `Settings` at start (`Settings.from_env`).
Secrets that production cannot run without fail loudly here rather than on the first
request, and so does every malformed value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kustom_app.logs import event_log

log = event_log(__name__)

LIVE_KUSTOM_API_URL = "https://api.kustom.co"
PLAYGROUND_KUSTOM_API_URL = "https://api.playground.kustom.co"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_PORT = 8000
DEFAULT_WEB_THREADS = 16
# Used only outside production mode so a local run works without configuration.
DEVELOPMENT_CALLBACK_SECRET = "kustom-app-development-callback-secret"  # noqa: S105
# A syncKustomOrder job that finds the cart's push lease held comes back when the lease is
# over plus up to this much jitter (workers/tasks.py): its longest countdown.
SYNC_BUSY_JITTER_SECONDS = 0.5

# A reader turns one environment value into a setting: (environment, name, default).
Reader = Callable[[Mapping[str, str], str, Any], Any]
_ENV = "env"  # field metadata: the environment names, first set wins
_READ = "read"  # field metadata: the Reader
_UNSET = "unset"  # field metadata: the value when unset, from the settings read before it


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the process must not start."""


def _text(env: Mapping[str, str], name: str, default: Any) -> Any:
    return env.get(name) or default


def _lower(env: Mapping[str, str], name: str, default: Any) -> Any:
    return (env.get(name) or default).lower()


def _url(env: Mapping[str, str], name: str, default: Any) -> Any:
    return (env.get(name) or "").rstrip("/") or default


def _csv(env: Mapping[str, str], name: str, default: Any) -> Any:
    parts = tuple(part.strip() for part in (env.get(name) or "").split(","))
    return tuple(part for part in parts if part) or default


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


def _count_or_zero(env: Mapping[str, str], name: str, default: int) -> int:
    return _count(env, name, default, allow_zero=True)


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


def _seconds_or_zero(env: Mapping[str, str], name: str, default: float) -> float:
    return _seconds(env, name, default, allow_zero=True)


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


def _worker_metrics_port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _port(env, name, default)
    if value == 65535:
        raise ConfigurationError(f"{name} must leave the next port for beat, got {value}")
    return value


def _basic_auth(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = env.get(name) or default
    if value is None:
        return None
    for credential in value.split(","):
        user, colon, password = credential.partition(":")
        if not (user and colon and password):
            raise ConfigurationError(f"{name} must be user:password (several separated by commas)")
    return value


def _reject(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value not in (400, 303):
        raise ConfigurationError(f"{name} must be 400 or 303")
    return value


def setting(
    env: str | tuple[str, ...],
    default: Any = None,
    read: Reader = _text,
    *,
    unset: Callable[[Mapping[str, Any]], Any] | None = None,
    secret: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A field of `Settings` read from the environment variable ``env`` (or the first set
    of several) by ``read``. An empty value means unset: the field is then ``default`` (or
    ``default_factory()``), or ``unset(the settings read so far)`` where the default
    follows another setting."""
    metadata = {_ENV: (env,) if isinstance(env, str) else env, _READ: read, _UNSET: unset}
    if default_factory is not None:
        return field(default_factory=default_factory, repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


def default_metrics_dir() -> str:
    """Where a node's processes share metric samples when PROMETHEUS_MULTIPROC_DIR is unset:
    one directory per user, so two users' services on one host never mix."""
    return str(Path(tempfile.gettempdir()) / f"kustom-app-metrics-{os.getuid()}")


def _streams_beside(web_threads: int) -> int:
    # Server-Sent Event streams each hold a gunicorn thread: leave some for other requests.
    return max(1, web_threads - 4)


@dataclass(frozen=True)
class Settings:
    """The settings table: a field a setting, its environment name and default beside it."""

    # CONTRACT section 2, and the processes of the Procfile.
    redis_url: str = setting("REDIS_URL", DEFAULT_REDIS_URL)
    celery_broker_url: str = setting(
        "CELERY_BROKER_URL", DEFAULT_REDIS_URL, unset=lambda read: read["redis_url"]
    )
    kustom_api_url: str = setting("KUSTOM_API_URL", PLAYGROUND_KUSTOM_API_URL, _url)
    kustom_username: str | None = setting("KUSTOM_USERNAME")
    kustom_password: str | None = setting("KUSTOM_PASSWORD", secret=True)
    # Read by gunicorn and Flower (Procfile), checked here so a bad value stops them too.
    port: int = setting("PORT", DEFAULT_PORT, _port)
    flower_port: int = setting("FLOWER_PORT", 5555, _port)
    web_concurrency: int = setting("WEB_CONCURRENCY", 2, _count)
    web_threads: int = setting("WEB_THREADS", DEFAULT_WEB_THREADS, _count)
    public_base_url: str = setting(
        "PUBLIC_BASE_URL",
        f"http://localhost:{DEFAULT_PORT}",
        _url,
        unset=lambda read: f"http://localhost:{read['port']}",
    )
    commerce_api_url: str | None = setting("COMMERCE_API_URL", None, _url)
    commerce_webhook_secret: str | None = setting("COMMERCE_WEBHOOK_SECRET", secret=True)
    # Required in production mode (`from_env`).
    callback_secret: str = setting("CALLBACK_SECRET", DEVELOPMENT_CALLBACK_SECRET, secret=True)
    validation_rules: tuple[str, ...] = setting("KUSTOM_VALIDATION_RULES", (), _csv)
    validation_reject: int = setting("KUSTOM_VALIDATION_REJECT", 400, _reject)
    # The ready rules' settings (kustom_app.rules): checked when such a rule is switched on,
    # and read again each time it runs.
    min_order_total: str = setting("KUSTOM_MIN_ORDER_TOTAL", "")
    allowed_channels: tuple[str, ...] = setting("KUSTOM_ALLOWED_CHANNELS", (), _csv)
    cors_allowed_origins: tuple[str, ...] = setting("CORS_ALLOWED_ORIGINS", (), _csv)
    # The demo shop's address, linked from GET / (scripts/run sets it when it runs the shop).
    shop_url: str | None = setting("SHOP_URL", None, _url)
    # APP_ENV=production, or the live Kustom API (`from_env`).
    production: bool = False
    log_format: str = setting("LOG_FORMAT", "text", _lower)
    # The worker's own /metrics and /healthz (beat's on the next port), on every node.
    worker_metrics_port: int = setting("WORKER_METRICS_PORT", 9540, _worker_metrics_port)
    worker_metrics_host: str = setting("WORKER_METRICS_HOST", "0.0.0.0")  # noqa: S104
    # Read by Flower itself (workers/flowerconfig.py); checked here so a bad value stops it.
    flower_basic_auth: str | None = setting("FLOWER_BASIC_AUTH", None, _basic_auth, secret=True)
    # Where the processes of one node share metric samples (kustom_app/metrics_directory.py).
    metrics_dir: str = setting("PROMETHEUS_MULTIPROC_DIR", default_factory=default_metrics_dir)
    # requests' own variables, read once at start rather than on every call (kustom_app.http).
    ca_bundle: str | None = setting(("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"))
    # Tunables (docs/configuration.md; defaults chosen for Kustom's limits).
    key_prefix: str = setting("KUSTOM_KEY_PREFIX", "kustom")
    cart_ttl_seconds: int = 72 * 3600  # Kustom's 48 h order life plus a day of margin
    order_record_ttl_seconds: int = 180 * 86400  # captures and refunds come weeks later
    order_max_age_seconds: int = 48 * 3600
    kustom_connect_timeout: float = 3.05
    kustom_read_timeout: float = setting("KUSTOM_READ_TIMEOUT", 10.0, _seconds)
    # How long after Kustom got a request it may still act on it: "The timeout for requests
    # towards the Kustom Checkout API is 30 seconds, after which a HTTP status code 504 will
    # be returned" (https://docs.kustom.co/v3/checkout/additional-resources/errors). An
    # update without an answer may land until then (kustom_app/sync.py).
    kustom_request_lifetime_seconds: float = setting(
        "KUSTOM_REQUEST_LIFETIME_SECONDS", 30.0, _seconds
    )
    commerce_connect_timeout: float = 3.05
    commerce_read_timeout: float = setting("COMMERCE_READ_TIMEOUT", 10.0, _seconds)
    visibility_timeout: int = setting("CELERY_VISIBILITY_TIMEOUT", 900, _count)
    reconcile_interval_seconds: float = setting("RECONCILE_INTERVAL_SECONDS", 60.0, _seconds)
    sync_stale_seconds: int = setting("SYNC_STALE_SECONDS", 60, _count)
    retry_base_seconds: float = setting("TASK_RETRY_BASE_SECONDS", 1.0, _seconds)
    retry_max_seconds: float = setting("TASK_RETRY_MAX_SECONDS", 300.0, _seconds)
    max_retries: int = setting("TASK_MAX_RETRIES", 12, _count_or_zero)
    reconcile_batch: int = setting("RECONCILE_BATCH", 200, _count)
    confirm_wait_seconds: float = setting("CONFIRM_WAIT_SECONDS", 3.0, _seconds_or_zero)
    # Longer than one commerce completion call can take.
    completion_lease_seconds: float = setting("COMPLETION_LEASE_SECONDS", 60.0, _seconds)
    # Longer than one Kustom call (3.05 s + 10 s) and a burst.
    sync_lease_seconds: float = setting("SYNC_LEASE_SECONDS", 45.0, _seconds)
    # Longer than a GET and a POST to Kustom (2 x (3.05 s connect + 10 s read)).
    payment_lease_seconds: float = setting("PAYMENT_LEASE_SECONDS", 60.0, _seconds)
    # A repeated payment event re-queues an operation whose task has not started this long.
    payment_requeue_after_seconds: float = setting("PAYMENT_REQUEUE_AFTER_SECONDS", 60.0, _seconds)
    task_time_limit_seconds: float = setting("TASK_TIME_LIMIT_SECONDS", 120.0, _seconds)
    task_soft_time_limit_seconds: float = setting("TASK_SOFT_TIME_LIMIT_SECONDS", 100.0, _seconds)
    # The sweeper's steps 3 and 4 (kustom_app/reconcile.py).
    reconcile_unacknowledged_after_seconds: float = setting(
        "RECONCILE_UNACKNOWLEDGED_AFTER_SECONDS", 5 * 60.0, _seconds
    )
    # Kustom pushes about 2 minutes after the purchase; an order quiet for longer than this
    # (no push, no confirmation) is worth asking Kustom about.
    reconcile_open_order_after_seconds: float = setting(
        "RECONCILE_OPEN_ORDER_AFTER_SECONDS", 10 * 60.0, _seconds
    )
    # Checks of a still-unpaid order back off like Kustom's own push retries, up to this.
    reconcile_open_order_max_interval_seconds: float = setting(
        "RECONCILE_OPEN_ORDER_MAX_INTERVAL_SECONDS", 4 * 3600.0, _seconds
    )
    # Server-Sent Event streams (webhooks/events.py): how many one web process serves, how
    # often an idle one sends a keepalive, how long one lives, and the reconnect delay
    # (``retry:``) it gives a browser, or a browser turned away while all are taken.
    events_max_streams: int = setting(
        "EVENTS_MAX_STREAMS",
        _streams_beside(DEFAULT_WEB_THREADS),
        _count,
        unset=lambda read: _streams_beside(read["web_threads"]),
    )
    events_heartbeat_seconds: float = 15.0
    events_max_stream_seconds: float = 300.0
    events_retry_ms: int = 3000
    events_busy_retry_ms: int = 5000
    # The shortcuts that lean on library internals (the fastpath_* modules); off, each
    # goes the plain library way.
    fast_paths: bool = setting("KUSTOM_FAST_PATHS", True, _on_off)

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
        for name, seconds in self.visibility_limits().items():
            if seconds >= self.visibility_timeout:
                raise ConfigurationError(
                    f"{name} is {seconds:g} s: it must stay below CELERY_VISIBILITY_TIMEOUT "
                    f"({self.visibility_timeout} s), or a second worker gets the task's message "
                    "while the first still holds it"
                )

    def visibility_limits(self) -> dict[str, float]:
        """What may hold a task's message unacknowledged, by name, in seconds: each must
        stay below CELERY_VISIBILITY_TIMEOUT (checked at start; `kustom-app doctor` shows
        them)."""
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
        return limits

    @property
    def kustom_configured(self) -> bool:
        return bool(self.kustom_username and self.kustom_password)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of a process, from ``env`` (by default its environment): each
        field by its table entry, then production mode and its required secret."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for each in dataclasses.fields(cls):
            if _ENV in each.metadata:
                values[each.name] = _read(each, env, values)
        values["production"] = (env.get("APP_ENV") or "").lower() == "production" or (
            values["kustom_api_url"] == LIVE_KUSTOM_API_URL
        )
        if not _given(_FIELDS["callback_secret"], env):
            if values["production"]:
                raise ConfigurationError(
                    "CALLBACK_SECRET is required in production mode "
                    "(APP_ENV=production or the live Kustom API)"
                )
            log.warning(
                "settings.callback_secret.development_default: Kustom's callbacks are signed "
                "with the public development secret; set CALLBACK_SECRET (a random string, "
                "e.g. `openssl rand -hex 32`) before any real Kustom order"
            )
        return cls(**values)

    @classmethod
    def read(cls, name: str, env: Mapping[str, str] | None = None) -> Any:
        """The setting ``name`` as the environment has it now, without reading the rest:
        for what must be known before a whole `Settings` is (the metrics directory), or is
        read again each time it is used (the ready validation rules)."""
        return _read(_FIELDS[name], os.environ if env is None else env, {})

    @classmethod
    def env_name(cls, name: str) -> str:
        """The environment variable of the setting ``name`` (for messages)."""
        names: tuple[str, ...] = _FIELDS[name].metadata[_ENV]
        return names[0]


_FIELDS = {each.name: each for each in dataclasses.fields(Settings)}


def _given(each: dataclasses.Field[Any], env: Mapping[str, str]) -> str | None:
    """The first of the field's environment names that is set (non-empty), if any."""
    return next((name for name in each.metadata[_ENV] if env.get(name)), None)


def _read(each: dataclasses.Field[Any], env: Mapping[str, str], read: Mapping[str, Any]) -> Any:
    name = _given(each, env)
    if name is None and each.metadata[_UNSET] is not None:
        return each.metadata[_UNSET](read)
    if each.default_factory is not dataclasses.MISSING:
        default = each.default_factory()
    else:
        default = each.default
    reader: Reader = each.metadata[_READ]
    return reader(env, name or each.metadata[_ENV][0], default)
