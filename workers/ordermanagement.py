"""Order-management tasks: captures, refunds, cancels (issue 5)."""

from __future__ import annotations
