"""The ingest bench's headline figures: each run against the bare run of its own round."""

from __future__ import annotations

import pytest

from bench.figures import Figure, figures_table, labelled_figures_table
from bench.ingest import BARE, FRESH, MUTATION, _figures
from bench.loadgen import LoadResult


def _run(rate: float) -> LoadResult:
    return LoadResult(
        requests=int(rate * 10), seconds=10.0, p50_ms=1, p99_ms=2, mean_ms=1, errors=0,
        wrapped=False,
    )  # fmt: skip


def _rate_figures(bare: list[float], mutation: list[float], fresh: list[float] | None = None):
    results = {
        (BARE, "split"): [_run(r) for r in bare],
        (MUTATION, "split"): [_run(r) for r in mutation],
    }
    if fresh is not None:
        results[(FRESH, "split")] = [_run(r) for r in fresh]
    figures = _figures(results, "split", 200, errors=0)
    return [f for f in figures if f.unit == "req/s"]


def test_the_ratio_is_the_median_of_each_round_against_its_own_bare_run():
    # Round 2 ran while the machine was slow for both rows: its ratio is still 0.6.
    (figure,) = _rate_figures(bare=[2000, 1000, 2000], mutation=[1200, 600, 1100])
    assert figure.ratio == pytest.approx(0.6)
    assert figure.ok is True
    assert figure.note == "median of 3 rounds (each against its own bare run): 0.55-0.60"
    # Totals over the rounds would have said 2900 / 5000 = 0.58 and hidden the pairing.
    assert figure.value == 1100 and figure.baseline == 2000


def test_one_slow_round_of_the_measured_row_does_not_decide_the_figure():
    (figure,) = _rate_figures(bare=[2000, 2000, 2000], mutation=[1100, 500, 1200])
    assert figure.ratio == pytest.approx(0.55)
    assert figure.ok is True


def test_below_the_target_is_reported_as_not_met():
    mutation, fresh = _rate_figures(
        bare=[2000, 2000, 2000], mutation=[900, 1100, 950], fresh=[1100, 1000, 1200]
    )
    assert mutation.ratio == pytest.approx(0.475) and mutation.ok is False
    assert fresh.ratio == pytest.approx(0.55) and fresh.ok is True
    assert "every render enqueues" in fresh.figure


def test_a_single_round_has_a_plain_note():
    (figure,) = _rate_figures(bare=[2000], mutation=[1000])
    assert figure.note == "one round"


def test_figure_tables_show_a_note_column_only_when_a_figure_has_a_note():
    plain = Figure("calls per burst", 1.5, "", ratio=0.1)
    noted = Figure("req/s", 1000.0, "req/s", baseline=2000.0, ratio=0.5, note="median of 5")
    assert "note" not in figures_table([plain]).splitlines()[0]
    table = labelled_figures_table([("coalescing", plain), ("ingest", noted)]).splitlines()
    assert table[0].startswith("| bench |") and table[0].endswith("| note |")
    assert table[2].endswith("|  |")  # the figure without a note has an empty cell
    assert table[3].endswith("| median of 5 |")
