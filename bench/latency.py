"""Latency of one call repeated: samples, percentiles, and the table of rows that
``bench.validation`` prints and records."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.history import append_run


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(pct / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Row:
    name: str
    samples_ms: list[float] = field(repr=False)
    statuses: dict[int, int]

    @property
    def p50(self) -> float:
        return percentile(sorted(self.samples_ms), 50)

    @property
    def p99(self) -> float:
        return percentile(sorted(self.samples_ms), 99)

    @property
    def mean(self) -> float:
        return sum(self.samples_ms) / len(self.samples_ms)


def time_calls(
    call: Callable[[], requests.Response],
    calls: int,
    *,
    warmup: int = 100,
    expect: int | None = None,
) -> tuple[list[float], dict[int, int]]:
    """Run ``call`` ``warmup`` + ``calls`` times; the latencies (ms) of the last ``calls``."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    statuses: dict[int, int] = {}
    for _ in range(calls):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    if expect is not None and set(statuses) != {expect}:
        raise RuntimeError(f"expected only {expect} answers, got {statuses}")
    return samples, statuses


def report(
    name: str,
    rows: Sequence[Row],
    *,
    baseline: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print a Markdown table of ``rows`` and append the run to bench/results/<name>.json.

    With ``baseline`` (a row name) each row also shows its p50/p99 as a multiple of it.
    """
    base = next((row for row in rows if row.name == baseline), None)
    header = "| endpoint | calls | p50 ms | p99 ms | mean ms |"
    rule = "|---|---:|---:|---:|---:|"
    if base is not None:
        header += " p50 vs bare | p99 vs bare |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    results = []
    for row in rows:
        line = (
            f"| {row.name} | {len(row.samples_ms)} | {row.p50:.2f} | {row.p99:.2f} "
            f"| {row.mean:.2f} |"
        )
        result: dict[str, Any] = {
            "name": row.name,
            "calls": len(row.samples_ms),
            "p50_ms": round(row.p50, 3),
            "p99_ms": round(row.p99, 3),
            "mean_ms": round(row.mean, 3),
            "statuses": {str(k): v for k, v in row.statuses.items()},
        }
        if base is not None:
            result["p50_ratio"] = round(row.p50 / base.p50, 2)
            result["p99_ratio"] = round(row.p99 / base.p99, 2)
            line += f" {result['p50_ratio']:.2f} | {result['p99_ratio']:.2f} |"
        print(line)
        results.append(result)
    return append_run(name, {**(meta or {}), "rows": results})


__all__ = [
    "Row",
    "percentile",
    "report",
    "time_calls",
]
