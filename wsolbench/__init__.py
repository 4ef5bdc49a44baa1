"""wsolbench: weakly supervised object localization under one exact, fast protocol."""

from wsolbench.engine import numerics
from wsolbench.errors import WsolbenchError
from wsolbench.registry import (
    create_backbone,
    create_explainer,
    create_method,
    create_postprocessor,
    list_backbones,
    list_explainers,
    list_methods,
    list_postprocessors,
    register_backbone,
    register_explainer,
    register_method,
    register_postprocessor,
)

numerics.request_mkl_branch()  # before MKL's first call: it cannot change branch afterwards

__version__ = "0.1.0"

__all__ = [
    "WsolbenchError",
    "create_backbone",
    "create_explainer",
    "create_method",
    "create_postprocessor",
    "list_backbones",
    "list_explainers",
    "list_methods",
    "list_postprocessors",
    "register_backbone",
    "register_explainer",
    "register_method",
    "register_postprocessor",
]
