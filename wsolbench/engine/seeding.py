"""Seeds derived from (seed, epoch, rank): every epoch starts from a known RNG state.

Reseeding at each epoch start is what makes `resume` exact: an epoch's augmentations, data
order and stochastic layers depend only on the seed and the epoch number, never on how many
epochs ran in this process before.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that mixes its parts well (nearby parts give unrelated streams)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31 | int(state[1])) & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker init: torch seeds each worker from the loader's generator; numpy and
    python follow it, so workers differ from each other and from run to run only by the seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
