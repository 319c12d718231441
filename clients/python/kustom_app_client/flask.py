"""Verify kustom-app's signed calls in a Flask view (Flask is not a dependency of this package).

    from kustom_app_client.flask import kustom_app_signature_required

    @app.post("/carts/<cart_id>/complete")
    @kustom_app_signature_required(lambda: app.config["KUSTOM_APP_SECRET"])
    def complete(cart_id): ...

A call without a valid ``X-Kustom-App-Signature`` gets 401 ``invalid_signature`` in the
service's error shape and never reaches the view.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import jsonify, request

from kustom_app_client.signing import (
    SERVICE_SIGNATURE_HEADER,
    TOLERANCE_SECONDS,
    InvalidSignature,
    verify_signature,
)

View = TypeVar("View", bound=Callable[..., Any])
Secret = str | Sequence[str] | Callable[[], str | Sequence[str]]


def kustom_app_signature_required(
    secret: Secret, *, tolerance: int = TOLERANCE_SECONDS
) -> Callable[[View], View]:
    """Decorate a view so it runs only for calls the service signed with ``secret`` (a
    string, several while rotating, or a callable read on every request)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            secrets = secret() if callable(secret) else secret
            try:
                verify_signature(
                    secrets,
                    request.get_data(cache=True),
                    request.headers.get(SERVICE_SIGNATURE_HEADER),
                    tolerance=tolerance,
                )
            except InvalidSignature as e:
                body = {
                    "error": {
                        "code": "invalid_signature",
                        "message": f"The {SERVICE_SIGNATURE_HEADER} header is not valid: {e}.",
                        "details": {"reason": e.reason},
                    }
                }
                return jsonify(body), 401
            return view(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate
