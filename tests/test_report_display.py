"""How the report shows its numbers: one colour per outcome everywhere, legends beside the data,
curves without artefacts, no column without a value."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_hex
from test_report import make_curves, make_results  # noqa: E402  (tests/ is on sys.path)

from wsolbench.evaluation.classic_loc import OUTCOMES
from wsolbench.evaluation.protocols import SPA_ERRORS
from wsolbench.report import figures, outcomes, shift_figure
from wsolbench.report.html import leaderboard_html
from wsolbench.report.tables import DIFFERENCE, MISSING, build_tables


@pytest.fixture
def captured(monkeypatch):
    """The figures drawn (instead of saved), by file name."""
    drawn = {}

    def keep(figure, path):
        figure.canvas.draw()
        drawn[path.name] = figure

    monkeypatch.setattr(figures, "_save", keep)
    yield drawn
    for figure in drawn.values():
        matplotlib.pyplot.close(figure)


def test_one_colour_and_label_per_outcome():
    assert tuple(outcomes.COLORS) == OUTCOMES and tuple(outcomes.LABELS) == OUTCOMES
    assert len(set(outcomes.COLORS.values())) == len(OUTCOMES)
    # The error-shift figure and the browser badges read the same palette.
    assert shift_figure.COLORS == tuple(outcomes.COLORS[k] for k in OUTCOMES)
    page = leaderboard_html("t", [])
    for style in outcomes.badge_styles():
        rule = (
            f".outcome-{style['kind']} {{ background: {style['background']}; "
            f"color: {style['text']}; }}"
        )
        assert rule in page


def test_badge_text_contrasts_with_its_colour():
    assert outcomes.text_color("#000000") == "#ffffff"
    assert outcomes.text_color("#ffffff") == "#000000"
    assert outcomes.text_color(outcomes.COLORS["more"]) == "#ffffff"  # dark blue
    assert outcomes.text_color(outcomes.COLORS["part"]) == "#000000"  # orange


def test_error_bars_use_the_palette(captured, tmp_path):
    results = make_results()
    errors = results[results["metric"].isin(SPA_ERRORS.values()) & (results["dataset"] == "synth")]
    figures.plot_error_bars(errors, tmp_path / "bars.png", "errors")
    (figure,) = captured.values()
    axis = figure.axes[0]
    colours = {to_hex(c.patches[0].get_facecolor()).lower(): c.get_label() for c in axis.containers}
    expected = {outcomes.COLORS[kind].lower(): outcomes.LABELS[kind] for kind in SPA_ERRORS}
    assert colours == expected
    _assert_legend_outside(figure)


def _assert_legend_outside(figure):
    legends = figure.legends + [a.get_legend() for a in figure.axes if a.get_legend()]
    assert legends, "no legend"
    renderer = figure.canvas.get_renderer()
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for axis in figure.axes:
            inner = axis.get_window_extent(renderer)
            overlap = box.x0 < inner.x1 and inner.x0 < box.x1 and box.y0 < inner.y1
            assert not (overlap and inner.y0 < box.y1), "the legend covers a panel"


@pytest.mark.parametrize("name", ["peak_iou", "pxap_pr", "box_acc_v2"])
def test_curve_legends_sit_beside_the_panels(captured, tmp_path, name):
    figures.render_figures(make_results(), tmp_path, curves=make_curves())
    figure = captured[f"{name}_synth_tinyvgg.png"]
    _assert_legend_outside(figure)
    # One entry per method (colour) and per post-processor (line style), not per curve.
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["cam", "spa", "plain", "+ SCG"]


def test_pr_curves_start_at_the_first_recall_not_at_the_origin(captured, tmp_path):
    curves = [
        dict(
            dataset="d",
            backbone="b",
            method="cam",
            postprocessor="none",
            curve="pxap_pr",
            # As the evaluator stores it: the first point (nothing predicted) is 0/0 -> 0.
            x=[0.0, 0.0, 0.25, 1.0],
            y=[0.0, 0.0, 0.9, 0.3],
        )
    ]
    figures.plot_single_curve(curves, "pxap_pr", tmp_path / "pr.png", "t", "recall", "precision")
    (line,) = captured["pr.png"].axes[0].get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [0.25, 1.0])
    np.testing.assert_array_equal(line.get_ydata(), [0.9, 0.3])


def test_no_table_has_a_column_without_a_value():
    for table in build_tables(make_results()):
        for column, header in enumerate(table.columns):
            values = {row[column] for row in table.rows}
            assert values != {MISSING}, (table.key, header)


def test_thresholds_are_shown_side_by_side_without_a_difference():
    peak = next(t for t in build_tables(make_results()) if t.key == "peak")
    at = peak.columns.index("Peak-T")
    assert peak.columns[at : at + 3] == ["Peak-T", "+ SCG", "GT-known Loc"]
    assert peak.columns[at - 1] == DIFFERENCE  # Peak-IoU keeps its difference
    # The terminal splits tables between groups: Peak-T's group is its two columns.
    assert sum(peak.groups) == len(peak.columns) - peak.label_count()
