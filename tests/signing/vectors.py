"""schemas/signing-vectors.json, loaded once for the signing tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = ROOT / "schemas" / "signing-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
SIGN: list[dict[str, Any]] = VECTORS["sign"]
VERIFY: list[dict[str, Any]] = VECTORS["verify"]


def body_bytes(vector: dict[str, Any]) -> bytes:
    """The vector's body as the exact bytes sent (``bodyBase64`` is the authority)."""
    return base64.b64decode(vector["bodyBase64"])


def names(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]
