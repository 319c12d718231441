"""Confirmation paths: the browser's confirm call, Kustom's push and fraud notifications."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("kustom_confirm", __name__)
