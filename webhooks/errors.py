"""The one error shape of the service: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import json
import re
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from kustom_app.errors import Refusal
from kustom_app.json_text import MAX_JSON_DEPTH, JsonTooDeep, decode_json
from kustom_app.logs import event_log

log = event_log(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ApiError(Refusal):
    """A refusal raised by the web layer itself (signature, body, ids)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details, status=status, code=code)


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response


def parse_json_object(raw: bytes | None = None) -> dict[str, Any]:
    """The request body as a JSON object, with decimals kept exact.

    The one parser of every JSON endpoint: refuses (400 ``invalid_json``) a body that is
    not JSON, not an object, nested deeper than `MAX_JSON_DEPTH`, or not valid Unicode.
    """
    data = request.get_data(cache=True) if raw is None else raw
    if not data:
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    try:
        parsed = decode_json(data)
    except JsonTooDeep as e:
        raise _too_deep() from e
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "invalid_json", f"The request body is not valid JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    if _SURROGATE_ESCAPE.search(data) and _has_lone_surrogate(parsed):
        raise ApiError(
            400,
            "invalid_json",
            "The request body has a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape "
            "without its pair): text must be valid Unicode.",
        )
    return parsed


def _too_deep() -> ApiError:
    return ApiError(
        400,
        "invalid_json",
        f"The request body nests objects or arrays more than {MAX_JSON_DEPTH} levels deep.",
        {"maxDepth": MAX_JSON_DEPTH},
    )


# A JSON escape of a UTF-16 surrogate. A pair (an emoji, say) decodes to one character; a
# lone one stays a surrogate that cannot be stored, hashed as sent, or sent to Kustom.
# Only bodies that have such an escape at all are looked at further.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Refusal)
    def _refusal(e: Refusal) -> Response:
        return error_response(e.status, e.code, e.message, e.details)

    @app.errorhandler(ValidationError)
    def _validation_error(e: ValidationError) -> Response:
        messages = e.messages if isinstance(e.messages, dict) else {"_schema": e.messages}
        return error_response(
            400, "validation_error", "The request body has invalid fields.", {"fields": messages}
        )

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Response:
        status = e.code or 500
        return error_response(status, HTTP_CODES.get(status, "http_error"), e.description or "")

    @app.errorhandler(redis.RedisError)
    def _redis_down(e: redis.RedisError) -> Response:
        # The caller should retry: commerce backends and Kustom both retry on 5xx.
        log.error("kustom.web.redis_unavailable", path=request.path, error=type(e).__name__)
        return error_response(503, "redis_unavailable", "The state store is unavailable; retry.")

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        log.exception("kustom.web.unhandled", path=request.path)
        return error_response(500, "internal_error", "An unexpected error occurred.")
