""".env.example lists every setting, each with the default the service really has."""

from __future__ import annotations

import dataclasses
import re

import pytest

from kustom_app.settings import Settings
from tests.deploy.kit import (
    CONTRACT_WORKER_METRICS_PORT,
    READ_BY_FROM_ENV,
    ROOT,
    contract_settings,
    procfile_variables,
    settings_table_names,
)

# Read by `make run` only (scripts/run), documented in docs/configuration.md.
READ_BY_MAKE_RUN = {"SHOP_PORT"}
ASSIGNMENT = re.compile(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$")


def listed() -> dict[str, str]:
    """The example's settings, each with the value it shows (commented out or not)."""
    found: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} listed twice"
            found[match.group(1)] = match.group(2)
    return found


def field_of(name: str) -> str | None:
    for each in dataclasses.fields(Settings):
        if name in each.metadata.get("env", ()):
            return each.name
    return None


def test_every_setting_is_listed_and_nothing_else():
    expected = (
        settings_table_names()
        | contract_settings()
        | READ_BY_FROM_ENV
        | set(procfile_variables())
        | READ_BY_MAKE_RUN
    )
    assert set(listed()) == expected


def test_the_contracts_settings_are_listed():
    assert {"WORKER_METRICS_PORT", "FLOWER_BASIC_AUTH", "LOG_FORMAT"} <= contract_settings()
    assert contract_settings() <= set(listed())


def test_copied_as_is_it_changes_nothing():
    """Every line is commented out: a copy to .env is the defaults until edited."""
    for line in (ROOT / ".env.example").read_text().splitlines():
        assert not line or line.startswith("#"), line


@pytest.mark.parametrize(("name", "shown"), [(n, v) for n, v in listed().items() if v])
def test_each_value_shown_is_the_default(name, shown):
    field = field_of(name)
    if field is not None:
        assert getattr(Settings.from_env({name: shown}), field) == getattr(
            Settings.from_env({}), field
        )
    elif name == "WORKER_METRICS_PORT":
        assert int(shown) == CONTRACT_WORKER_METRICS_PORT
    else:
        assert procfile_variables()[name] == shown
