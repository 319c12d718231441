"""Verify kustom-app's signed calls in a Django view (Django is not a dependency of this
package; import this module only where Django is installed).

    from django.views.decorators.csrf import csrf_exempt
    from kustom_app_client.django import kustom_app_signature_required

    @csrf_exempt
    @kustom_app_signature_required(lambda: settings.KUSTOM_APP_SECRET)
    def complete(request, cart_id): ...

A call without a valid ``X-Kustom-App-Signature`` gets 401 ``invalid_signature`` in the
service's error shape and never reaches the view. The service's calls carry no CSRF token:
exempt these views (they are authenticated by the signature instead).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.http import HttpRequest, JsonResponse

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
    """Decorate a function view so it runs only for calls the service signed with
    ``secret`` (a string, several while rotating, or a callable read on every request)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            secrets = secret() if callable(secret) else secret
            try:
                verify_signature(
                    secrets,
                    request.body,  # the raw bytes; read before anything parses them
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
                return JsonResponse(body, status=401)
            return view(request, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate
