"""Data: the metadata format, datasets, converters from native layouts, the synthetic benchmark.

Only the metadata layer is imported here (no torch), so metric code can read splits cheaply;
import ``wsolbench.data.datasets`` for the PyTorch datasets.
"""

from wsolbench.data.metadata import MaskRef, Split, read_split, validate_files, write_split

__all__ = ["MaskRef", "Split", "read_split", "validate_files", "write_split"]
