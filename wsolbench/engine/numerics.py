"""CPU float arithmetic, one owner: what fixes the bits of a CPU run besides code, data and seed.

PyTorch's CPU float sums depend on two settings of the process (measured on tinyvgg, one
training step, docs/protocols.md sec. 9):

- the intra-op thread count: oneDNN's convolution backward splits the batch reduction of the
  weight gradient among the threads, so 1 and 2 threads give other weights for every method.
  numba's parallel launch (the box search) resets the OpenMP count it shares with torch;
- MKL's code branch: ``nn.Linear`` (the GAP + fc head of CAM, HaS, ADL and CutMix) is an MKL
  gemm, and MKL picks its kernels per processor (its AVX2 and AVX-512 kernels round differently)
  and, outside its conditional numerical reproducibility (CNR) mode, also by cache sizes, with
  dynamic thread scheduling. Convolutions (oneDNN) never call MKL.

Training pins both: ``pinned_threads`` sets the run's thread count (``TrainConfig.threads``,
recorded in its execution and so in its hash; a resume keeps the run's) at every epoch, and
the bench scores the run under the same count (SCG's products and sums are torch's too); MKL runs in CNR mode on the branch
``MKL_BRANCH``, requested through ``MKL_CBWR`` when wsolbench is imported (MKL reads it at its
first call and cannot change branch afterwards), and ``mkl_branch`` reports the branch in force.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from pathlib import Path

# MKL's CNR branch: AUTO dispatches per processor as MKL always does, with fixed cache sizes,
# deterministic reductions and static scheduling (on this project's machines its bits equal
# MKL's default ones). A user's own MKL_CBWR is left as it is (and recorded).
MKL_BRANCH = "AUTO"

# mkl_cbwr.h: the values mkl_cbwr_get(MKL_CBWR_BRANCH) returns.
_MKL_BRANCHES = {
    1: "off",
    2: "auto",
    3: "compatible",
    4: "sse2",
    6: "ssse3",
    7: "sse4_1",
    8: "sse4_2",
    9: "avx",
    10: "avx2",
    12: "avx512",
    14: "avx512_e1",
}


def request_mkl_branch() -> None:
    """Ask MKL for its CNR branch before its first call (environment only: no torch import)."""
    os.environ.setdefault("MKL_CBWR", MKL_BRANCH)


@functools.cache
def _mkl_get():
    """MKL's ``mkl_cbwr_get`` inside torch's CPU library, or None (a torch built without MKL)."""
    import torch

    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll"):
        try:
            get = ctypes.CDLL(str(lib_dir / name)).mkl_serv_cbwr_get
        except (OSError, AttributeError):
            continue
        get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
        return get
    return None


def mkl_branch() -> str:
    """The MKL branch in force in this process (MKL's first call, this one included, fixes it
    from ``MKL_CBWR``): ``off`` where MKL ran before wsolbench was imported, ``none`` without
    MKL."""
    get = _mkl_get()
    if get is None:
        return "none"
    branch = get(1)  # MKL_CBWR_BRANCH
    return _MKL_BRANCHES.get(branch, str(branch))


def cpu_threads(threads: int) -> int:
    """The thread count a CPU run uses: ``threads``, or for 0 torch's count when it starts."""
    import torch

    return threads or torch.get_num_threads()


@contextlib.contextmanager
def pinned_threads(device):
    """A training (or the bench's scoring of its run) on ``device``: yields ``pin(threads)``, which sets ``cpu_threads(threads)``
    intra-op threads on the CPU (0: the count at entry); the training calls it at every epoch
    (a callback's numba launch may have reset the count). The caller's count is put back."""
    import torch

    if device.type != "cpu":
        yield lambda threads: None
        return
    previous = torch.get_num_threads()

    def pin(threads: int) -> None:
        wanted = threads or previous
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    try:
        yield pin
    finally:
        torch.set_num_threads(previous)
