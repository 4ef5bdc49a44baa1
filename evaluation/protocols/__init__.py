"""The evaluation protocols, one module each (docs/protocols.md).

Each module registers its protocol (``@register_protocol``) when imported; the import lines
below are the registry: a new protocol is one module plus its line here. ``create_protocols``
builds them from a suite's ``[evaluation]`` settings, each taking the keys its constructor
accepts, so the CLI, the Python API and the suites share each protocol's one default.

- ``wsolevaluation``, ``spa``, ``peak``: the seed protocols (the default set of a suite);
- ``tscam``, ``scm``, ``bas``, ``dawsol``: the post-2021 families' own evaluation code.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from wsolbench.evaluation.protocols.bas import Bas
from wsolbench.evaluation.protocols.base import (
    RULE_ASPECTS,
    ColumnSpec,
    GroundTruth,
    MapBatch,
    MetricSpec,
    Protocol,
    TableSpec,
    resize_nearest,
    threshold_key,
)
from wsolbench.evaluation.protocols.dawsol import DaWsol
from wsolbench.evaluation.protocols.peak import Peak
from wsolbench.evaluation.protocols.scm import Scm
from wsolbench.evaluation.protocols.spa import ON_TEST, SPA_ERRORS, THRESHOLD_METRICS, Spa
from wsolbench.evaluation.protocols.tscam import TsCam
from wsolbench.evaluation.protocols.wsolevaluation import WsolEvaluation
from wsolbench.registry import DEFAULT_PROTOCOLS, PROTOCOLS


def create_protocols(
    settings: Mapping[str, Any] | None = None, names: Sequence[str] | None = None
) -> dict[str, Protocol]:
    """The protocols ``names`` (default: ``DEFAULT_PROTOCOLS``), each built from the
    ``settings`` keys its constructor takes (a suite's ``[evaluation]`` table: map_size,
    cam_curve_interval, iou_thresholds, box_thresholds, dataset, ...)."""
    settings = dict(settings or {})
    out = {}
    for name in names or DEFAULT_PROTOCOLS:
        factory = PROTOCOLS.get(name)
        accepted = inspect.signature(factory).parameters
        out[name] = factory(**{k: v for k, v in settings.items() if k in accepted})
    return out


def registered_protocols() -> dict[str, Protocol]:
    """Every registered protocol with its default settings (the report's metric names, the
    statistics of the per-image records, the tables): the default set first, in its order."""
    names = dict.fromkeys([*DEFAULT_PROTOCOLS, *PROTOCOLS.registered()])
    return create_protocols(names=list(names))


default_protocols = registered_protocols  # the name the report modules know

__all__ = [
    "Bas",
    "DaWsol",
    "Scm",
    "TsCam",
    "DEFAULT_PROTOCOLS",
    "ON_TEST",
    "RULE_ASPECTS",
    "SPA_ERRORS",
    "THRESHOLD_METRICS",
    "ColumnSpec",
    "GroundTruth",
    "MapBatch",
    "MetricSpec",
    "Peak",
    "Protocol",
    "Spa",
    "TableSpec",
    "WsolEvaluation",
    "create_protocols",
    "registered_protocols",
    "resize_nearest",
    "threshold_key",
]
