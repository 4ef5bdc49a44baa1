"""The device choice, one owner: what `--device` / `device` accept and what they resolve to.

``auto`` is CUDA when available, else the CPU; ``cuda:N`` must exist. Under torchrun the rank's
device comes from the process group (``run_device``). torch is imported only when a device is
resolved, so the CLI's parsers stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsolbench.errors import WsolbenchError
from wsolbench.options import Option, check

if TYPE_CHECKING:
    import torch

DEVICE_OPTION = Option(str, pattern=r"auto|cpu|cuda(:\d+)?", words="auto, cpu, cuda or cuda:N")


def check_device(name: str, key: str = "device") -> str:
    """``name`` if it is a device choice, else one error naming ``key`` (a flag or a key)."""
    return check(name, DEVICE_OPTION, key)


def device_type(name: str) -> str:
    """``cuda`` or ``cpu``: what ``name`` resolves to, without touching the device."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if name.startswith("cuda") else "cpu"


def resolve_device(name: str, key: str = "device") -> torch.device:
    """The torch device of a device choice; a CUDA device that is not there is an error."""
    import torch

    check_device(name, key)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise WsolbenchError(f"{key} '{name}' asked for, but CUDA is not available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise WsolbenchError(
            f"{key} '{name}' asked for, but there are {torch.cuda.device_count()} CUDA devices"
        )
    return device


def run_device(name: str, key: str = "device") -> torch.device:
    """``resolve_device``, but under torchrun first join the process group (a CPU run uses
    gloo even on a machine with GPUs) and take this rank's CUDA device."""
    from wsolbench.engine import distributed

    check_device(name, key)
    cuda_device = distributed.init_from_env(backend="gloo" if name == "cpu" else None)
    return cuda_device or resolve_device(name, key)
