"""schemathesis against the running service: no 5xx, no answer outside GET /openapi.json.

The app is served over loopback HTTP by a real threaded server, with a real redis-server
(state and Celery broker), the Kustom and commerce doubles behind it; schemathesis reads
the document the app serves and sends what it describes. Commerce events are signed over
the exact bytes sent and Kustom callbacks carry the cart's real token (`SigningSession`),
so generated requests get past the 401s to the code behind them; `test_unsigned_requests`
sends them as they are generated, and every one must be refused (401) in the documented
shape.

Bounded for CI: ``API_FUZZ_EXAMPLES`` examples per operation (default 20), no shrinking,
the same examples every run unless ``API_FUZZ_RANDOM=1``; about a minute in all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kustom_app.settings import Settings
from kustom_app.signing import callback_token, sign_payload
from playground.server import ServerThread
from tests.conftest import CALLBACK_SECRET, COMMERCE_SECRET
from webhooks.commerce import INBOUND_SIGNATURE_HEADER
from webhooks.openapi import openapi_document

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "20"))
# CI draws the same examples every run (a failure there is reproducible); set
# API_FUZZ_RANDOM=1 to explore new ones.
RANDOM = os.environ.get("API_FUZZ_RANDOM", "") not in ("", "0")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
TIMEOUT = (3.05, 15)


class SigningSession(requests.Session):
    """Signs what the commerce backend and Kustom would: the exact body bytes of a commerce
    event (X-Commerce-Signature), and the `token` of a callback's `cart`."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        if parts.path.startswith("/commerce/"):
            body = request.body or b""
            raw = body.encode() if isinstance(body, str) else body
            request.headers[INBOUND_SIGNATURE_HEADER] = sign_payload(COMMERCE_SECRET, raw)
        elif parts.path.startswith("/kustom/"):
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            if query.get("cart"):
                query["token"] = callback_token(CALLBACK_SECRET, query["cart"])
                request.url = urlunsplit(parts._replace(query=urlencode(query)))
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def api(service_env: dict[str, str], celery_in_process) -> Iterator[ServerThread]:
    from webhooks.app import create_app

    # Event streams of a cart the fuzzer created end after a second rather than 5 minutes.
    settings_ = replace(
        Settings.from_env(service_env), events_max_stream_seconds=1.0, events_heartbeat_seconds=0.5
    )
    with ServerThread(create_app({"SETTINGS": settings_}), name="openapi-fuzz") as server:
        yield server


# The document as the code builds it; `test_it_is_the_document_the_service_serves` holds the
# served one to it. (Loaded at import rather than through schemathesis.pytest.from_fixture,
# which reads a private attribute pytest 9 no longer has.)
schema = schemathesis.openapi.from_dict(openapi_document())


def test_it_is_the_document_the_service_serves(api):
    assert requests.get(f"{api.url}/openapi.json", timeout=TIMEOUT).json() == openapi_document()


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not RANDOM,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def signing_session() -> Iterator[requests.Session]:
    with SigningSession() as session:
        yield session


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_service_answers_as_its_openapi_document_says(case, api, signing_session):
    case.call_and_validate(
        base_url=api.url, session=signing_session, checks=CHECKS, timeout=TIMEOUT
    )


@schema.include(path_regex="^/(commerce|kustom)/").parametrize()
@FUZZ_SETTINGS
def test_unsigned_requests(case, api):
    with requests.Session() as session:
        response = case.call_and_validate(
            base_url=api.url, session=session, checks=CHECKS, timeout=TIMEOUT
        )
    if case.method.upper() == case.operation.method.upper():  # not one of the 405 probes
        assert response.status_code == 401, response.text
