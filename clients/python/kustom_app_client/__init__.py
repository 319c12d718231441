"""kustom-app's client for commerce backends.

- `KustomAppClient`: send cart renders, captures, refunds and cancels, signed, with retries
  that keep each event's idempotency.
- `verify_signature`: check the service's signed calls (``X-Kustom-App-Signature``) in any
  framework; `kustom_app_client.flask` and `kustom_app_client.django` wrap it for views.
"""

from kustom_app_client.client import (
    CancelAccepted,
    CaptureAccepted,
    CartStatus,
    KustomAppClient,
    RefundAccepted,
    RenderAccepted,
    encode_event,
)
from kustom_app_client.errors import KustomAppError, KustomAppRejected, KustomAppUnavailable
from kustom_app_client.signing import (
    COMMERCE_SIGNATURE_HEADER,
    SERVICE_SIGNATURE_HEADER,
    TOLERANCE_SECONDS,
    InvalidSignature,
    sign,
    verify_signature,
)

__all__ = [
    "COMMERCE_SIGNATURE_HEADER",
    "SERVICE_SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "CancelAccepted",
    "CaptureAccepted",
    "CartStatus",
    "InvalidSignature",
    "KustomAppClient",
    "KustomAppError",
    "KustomAppRejected",
    "KustomAppUnavailable",
    "RefundAccepted",
    "RenderAccepted",
    "encode_event",
    "sign",
    "verify_signature",
]
__version__ = "0.1.0"
