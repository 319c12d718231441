"""Which merchant rules the validation callback runs: loading them once, at start.

Rules come from the entry-point group ``kustom_app.validation_rules`` (installed packages)
and from ``KUSTOM_VALIDATION_RULES`` (``module:function`` specs), in that order. A rule that
does not load, is not callable, or fails its own configuration check stops the process at
start (`ConfigurationError`), never a checkout at run time.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kustom_app.logs import event_log
from kustom_app.settings import ConfigurationError

# The validation log: operators search one logger for what validation did at start.
log = event_log("kustom_app.validation")

ENTRY_POINT_GROUP = "kustom_app.validation_rules"

Rule = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class NamedRule:
    """A merchant rule and the name it is logged under (``module:function``)."""

    name: str
    func: Rule


def _check_configuration(rule: NamedRule) -> None:
    # A rule object may carry its own configuration check (see kustom_app.rules): a rule
    # switched on with a malformed setting must stop the process at start, not reject every
    # checkout at run time.
    check = getattr(rule.func, "check_configuration", None)
    if not callable(check):
        return
    try:
        check()
    except ConfigurationError as e:
        raise ConfigurationError(f"validation rule {rule.name}: {e}") from e
    except Exception as e:
        raise ConfigurationError(
            f"validation rule {rule.name}: configuration check failed: {e}"
        ) from e


def _load_entry_point(entry_point: importlib.metadata.EntryPoint, origin: str) -> NamedRule:
    name = entry_point.value if origin == "KUSTOM_VALIDATION_RULES" else entry_point.name
    try:
        func = entry_point.load()
    except Exception as e:  # ImportError, AttributeError, or the module failing to import
        raise ConfigurationError(
            f"validation rule {name!r} ({origin}) cannot be loaded: {type(e).__name__}: {e}"
        ) from e
    if not callable(func):
        raise ConfigurationError(f"validation rule {name!r} ({origin}) is not callable")
    rule = NamedRule(name, func)
    _check_configuration(rule)
    return rule


def load_rules(specs: Iterable[str] = ()) -> tuple[NamedRule, ...]:
    """Load the merchant rules: the entry-point group first, then ``specs`` in order.

    ``specs`` are ``module:function`` strings (``module:Class.attr`` works too), usually
    ``Settings.validation_rules`` from ``KUSTOM_VALIDATION_RULES``. The same callable named
    twice runs once. Raises `ConfigurationError` for a malformed spec, a module or name
    that does not import, something not callable, or a failed configuration check, so a
    mistake stops the process at start.
    """
    rules: list[NamedRule] = []
    seen: set[int] = set()

    def add(rule: NamedRule) -> None:
        if id(rule.func) not in seen:
            seen.add(id(rule.func))
            rules.append(rule)

    discovered = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in sorted(discovered, key=lambda ep: ep.name):
        add(_load_entry_point(entry_point, f"entry point in {ENTRY_POINT_GROUP}"))
    for raw in specs:
        spec = raw.strip()
        module, sep, attr = spec.partition(":")
        if not sep or not module.strip() or not attr.strip():
            raise ConfigurationError(
                f"KUSTOM_VALIDATION_RULES entry {raw!r} is not of the form module:function"
            )
        entry_point = importlib.metadata.EntryPoint(name=spec, value=spec, group="")
        add(_load_entry_point(entry_point, "KUSTOM_VALIDATION_RULES"))
    return tuple(rules)


@functools.cache
def process_rules(specs: tuple[str, ...]) -> tuple[NamedRule, ...]:
    """`load_rules` once per process (and per set of specs); the web app calls this at start."""
    rules = load_rules(specs)
    log.info(
        "kustom.validation.rules_loaded",
        count=len(rules),
        rules=",".join(rule.name for rule in rules) or "-",
    )
    return rules
