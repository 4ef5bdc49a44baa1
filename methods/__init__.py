"""WSOL methods (one file each) and post-processors; importing this registers them.

Build one with ``wsolbench.create_method(name, backbone="tinyvgg", num_classes=10, ...)``.
"""

from wsolbench.methods import (  # noqa: F401  (registers the methods and post-processors)
    acol,
    adl,
    bas,
    cam,
    cutmix,
    has,
    postprocess,
    scg,
    scm,
    spa,
    spg,
    tscam,
)
