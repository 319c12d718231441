"""A bench's headline figures, each beside its same-run baseline and its target, and the
Markdown tables that print them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` is one letter per column (l/r), default l then r."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Figure:
    """One headline number of a benchmark, beside its same-run baseline and its target.

    ``ratio`` is how the figure compares with the baseline in the direction the target is
    written in (e.g. measured req/s ÷ bare req/s; Kustom calls ÷ renders).
    """

    figure: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None
    note: str = ""

    def cells(self, bench: str | None = None) -> list[str]:
        cells = [] if bench is None else [bench]
        verdict = "" if self.ok is None else ("yes" if self.ok else "**no**")
        cells += [
            self.figure,
            _fmt(self.value, self.unit),
            "" if self.baseline is None else _fmt(self.baseline, self.unit),
            "" if self.ratio is None else f"{self.ratio:.2f}",
            self.target,
            verdict,
        ]
        return cells

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": round(self.value, 3),
            "unit": self.unit,
            "baseline": None if self.baseline is None else round(self.baseline, 3),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "ok": self.ok,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Figure:
        return cls(
            figure=data["figure"],
            value=data["value"],
            unit=data.get("unit", ""),
            baseline=data.get("baseline"),
            ratio=data.get("ratio"),
            target=data.get("target", ""),
            ok=data.get("ok"),
            note=data.get("note", ""),
        )


FIGURE_HEADERS = ["figure", "value", "baseline (same run)", "ratio", "target", "met"]


def _fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit in ("req/s", "carts/s", "calls/s"):
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.2f} {unit}".strip() if value != int(value) else f"{value:.0f} {unit}".strip()


def figures_table(figures: Sequence[Figure], *, bench: str | None = None) -> str:
    return labelled_figures_table([(bench, figure) for figure in figures])


def labelled_figures_table(figures: Sequence[tuple[str | None, Figure]]) -> str:
    """One table of figures, each with the name of its bench (or None: no bench column);
    a note column when any figure has a note."""
    with_bench = any(bench is not None for bench, _ in figures)
    with_note = any(figure.note for _, figure in figures)
    headers = (["bench"] if with_bench else []) + FIGURE_HEADERS + (["note"] if with_note else [])
    rows = [
        figure.cells(bench if with_bench else None) + ([figure.note] if with_note else [])
        for bench, figure in figures
    ]
    return markdown_table(headers, rows, "l" * len(headers))


__all__ = [
    "FIGURE_HEADERS",
    "Figure",
    "figures_table",
    "labelled_figures_table",
    "markdown_table",
]
