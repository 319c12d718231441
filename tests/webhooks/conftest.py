"""Every answer a web test sees is held to the service's OpenAPI document."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.api_conformance import ConformingClient


@pytest.fixture(autouse=True)
def _answers_conform_to_openapi(monkeypatch: pytest.MonkeyPatch) -> None:
    # Class-wide: tests here build apps with create_app(...) and call app.test_client().
    monkeypatch.setattr(Flask, "test_client_class", ConformingClient)
