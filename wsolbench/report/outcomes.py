"""How a localization outcome (correct, or one of the spa protocol's five error types) is shown:
its printed label and its colour, the one palette of the error-type bar chart, the error-shift
figure and the failure browser's badges.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies);
a badge's text is black or white, whichever contrasts more with its background.
"""

from __future__ import annotations

from wsolbench.evaluation.classic_loc import OUTCOMES
from wsolbench.evaluation.protocols import SPA_ERRORS
from wsolbench.report.results import METRIC_SPECS

COLORS = {
    "correct": "#009E73",  # bluish green
    "cls": "#999999",  # grey: the class is wrong, the box does not matter
    "m-ins": "#CC79A7",  # reddish purple
    "part": "#E69F00",  # orange
    "more": "#0072B2",  # blue
    "ot": "#D55E00",  # vermilion
}
LABELS = {
    "correct": "correct",
    **{kind: METRIC_SPECS[("spa", metric)].label for kind, metric in SPA_ERRORS.items()},
}


def metric_color(metric: str) -> str:
    """The colour of a spa error-type metric (``err_cls``, ``err_mins``, ...)."""
    kind = next(kind for kind, name in SPA_ERRORS.items() if name == metric)
    return COLORS[kind]


def text_color(background: str) -> str:
    """Black or white, whichever has the higher WCAG contrast on ``background`` (#RRGGBB)."""

    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    return "#000000" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "#ffffff"


def badge_styles() -> list[dict[str, str]]:
    """One ``{"kind", "label", "background", "text"}`` per outcome, in outcome order."""
    return [
        {
            "kind": kind,
            "label": LABELS[kind],
            "background": COLORS[kind],
            "text": text_color(COLORS[kind]),
        }
        for kind in OUTCOMES
    ]
