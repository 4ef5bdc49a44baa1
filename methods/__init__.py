"""WSOL methods (one file each) and post-processors; importing this registers them.

Build one with ``wsolbench.create_method(name, backbone="tinyvgg", num_classes=10, ...)``.
"""

from wsolbench.methods import acol, adl, cam, cutmix, has, postprocess, scg, spa, spg  # noqa: F401  (registers)  # noqa: F401  (post-processors)
