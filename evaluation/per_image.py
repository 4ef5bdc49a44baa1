"""The base of every accumulator: exact integer counts as ``torchmetrics`` states, and optional
per-image records beside them.

Counts are int64 states reduced by ``sum``, so torchmetrics' own machinery gives the exact
merge across DDP ranks (``compute`` syncs them), ``merge_state`` and ``state_dict``; results do
not depend on batch size, order, sharding or device. ``keep_per_image()`` adds one ``cat`` state
per record field: each image's outcome, in accumulation order (ranks concatenated in rank
order when synced), whose sum over images is the pooled counts, so per-image statistics (error
types, bootstrap intervals) never disagree with the aggregate metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from wsolbench.errors import WsolbenchError

PER_IMAGE = "per_image_"  # prefix of the record states (apart from the counts' names)


class CountMetric(Metric):
    """A torchmetrics ``Metric`` whose states are integer counts (summed) and, when kept,
    per-image records (concatenated)."""

    full_state_update = False  # update never reads the states: merge_state and DDP sync apply
    is_differentiable = False
    # The per-image record's fields and their types, in order. Pixel histograms are int32 (a
    # type every process group gathers) and come back compacted (``compact_counts``).
    record_fields: dict[str, type] = {}
    histogram_fields: tuple[str, ...] = ()

    def add_count(self, name: str, shape: Sequence[int] = ()) -> None:
        self.add_state(
            name,
            torch.zeros(tuple(shape), dtype=torch.int64),
            dist_reduce_fx="sum",
            persistent=True,
        )

    def add_counts(self, name: str, counts) -> None:
        """Add a batch's counts (numpy or tensor) to the state ``name``, on the state's device."""
        state = getattr(self, name)
        setattr(self, name, state + torch.as_tensor(np.asarray(counts)).to(state.device))

    # -- per-image records ---------------------------------------------------------------------
    def keep_per_image(self):
        """Also keep each image's outcome (``per_image_arrays``); see the subclass for fields."""
        for field in self.record_fields:
            if not hasattr(self, PER_IMAGE + field):
                self.add_state(PER_IMAGE + field, [], dist_reduce_fx="cat", persistent=True)
        return self

    @property
    def keeps_per_image(self) -> bool:
        return bool(self.record_fields) and hasattr(
            self, PER_IMAGE + next(iter(self.record_fields))
        )

    def add_record(self, record: dict[str, np.ndarray]) -> None:
        """Append one batch's per-image record (arrays with images along the first axis)."""
        if self.keeps_per_image:
            for field in self.record_fields:
                value = np.asarray(record[field], self.record_fields[field])
                getattr(self, PER_IMAGE + field).append(torch.from_numpy(value))

    def per_image_arrays(self) -> dict[str, np.ndarray]:
        """The kept records as arrays, images along the first axis ({} when none are kept)."""
        if not self.keeps_per_image:
            return {}
        arrays = {}
        for field, dtype in self.record_fields.items():
            value = getattr(self, PER_IMAGE + field)  # a list, or one tensor once synced
            if isinstance(value, list):
                value = torch.cat(value) if value else torch.zeros(0)
            # A process without images contributes an empty float tensor to the gather.
            array = value.cpu().numpy().astype(dtype, copy=False)
            arrays[field] = compact_counts(array) if field in self.histogram_fields else array
        return arrays

    def computed_records(self) -> dict[str, dict[str, np.ndarray]]:
        """``{"per_image": arrays}`` for ``compute`` when records are kept: inside ``compute``
        the states are every process's (torchmetrics syncs them), so this is the split's whole
        record; ``per_image_arrays()`` outside it gives this process's own."""
        return {"per_image": self.per_image_arrays()} if self.keeps_per_image else {}

    # -- merging -------------------------------------------------------------------------------
    def merge(self, other: CountMetric) -> CountMetric:
        """Add another shard's counts (torchmetrics' ``merge_state``: exact integer sums; the
        other's per-image records come first, as torchmetrics concatenates)."""
        if type(other) is not type(self) or self.settings() != other.settings():
            raise WsolbenchError(
                f"cannot merge {type(other).__name__}({other.settings()}) into "
                f"{type(self).__name__}({self.settings()}): different metrics or thresholds"
            )
        if self.keeps_per_image != other.keeps_per_image:
            raise WsolbenchError(
                "cannot merge accumulators of which only one keeps per-image records"
            )
        self.merge_state(other)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        loaded = any(key.startswith(prefix) for key in state_dict)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if loaded:  # loaded counts are accumulated counts: no "compute before update" warning
            self._update_count = max(self._update_count, 1)

    def settings(self) -> dict:
        """What must agree for two accumulators to merge (thresholds, bins)."""
        return {}


def image_histograms(codes: np.ndarray, width: int) -> np.ndarray:
    """One histogram per image: ``codes`` (N, ...) integers in [0, width) -> (N, width) counts,
    from a single bincount (images offset by ``width``)."""
    count = codes.shape[0]
    offsets = (np.arange(count, dtype=np.int64) * width).reshape((count,) + (1,) * (codes.ndim - 1))
    flat = (codes.astype(np.int64) + offsets).ravel()
    return np.bincount(flat, minlength=count * width).reshape(count, width)


def compact_counts(counts: np.ndarray) -> np.ndarray:
    """Pixel counts in the smallest unsigned type that holds them (uint16 for maps up to 256 x
    256), halving what a split's histograms take."""
    for dtype in (np.uint16, np.uint32):
        if counts.size == 0 or counts.max() <= np.iinfo(dtype).max:
            return counts.astype(dtype)
    return counts.astype(np.int64)
