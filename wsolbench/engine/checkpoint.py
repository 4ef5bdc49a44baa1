"""Checkpoints: tensors and plain Python types only, so they load with `weights_only=True`.

A checkpoint is a dict: format tag, model / optimizer / scheduler state, completed epochs, RNG
states, the training config, method name, hyperparameters and class count. Loading never
unpickles arbitrary objects: a file that needs that is refused as unsafe.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsolbench.errors import WsolbenchError
from wsolbench.identity import weights_hash
from wsolbench.io import save_torch
from wsolbench.registry import COMMON_ARGUMENTS

FORMAT = "wsolbench-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "model", "method", "backbone", "hparams", "num_classes")


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors / plain types."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write atomically: an interrupted save never leaves a truncated checkpoint behind."""
    return save_torch(path, {"format": FORMAT, "version": VERSION, **payload})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely (`weights_only=True`); an unsafe or malformed file is a WsolbenchError."""
    path = Path(path)
    if not path.is_file():
        raise WsolbenchError("checkpoint not found", path=path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # pickle errors come in many types; all mean the same here
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # torch's message has ANSI bold
        first_line = text.splitlines()[0] if text else ""
        raise WsolbenchError(
            "unsafe or malformed checkpoint: it does not load with weights_only=True "
            f"({type(error).__name__}: {first_line[:200]})",
            path=path,
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise WsolbenchError("not a wsolbench checkpoint (no format tag)", path=path)
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise WsolbenchError(f"malformed checkpoint: missing {', '.join(missing)}", path=path)
    _check_fields(checkpoint, path)
    if checkpoint["version"] > VERSION:
        raise WsolbenchError(
            f"checkpoint format version {checkpoint['version']} is newer than this wsolbench "
            f"reads ({VERSION}); upgrade wsolbench",
            path=path,
        )
    return checkpoint


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint wsolbench wrote (a file an output may replace)."""
    try:
        load_checkpoint(path)
    except WsolbenchError:
        return False
    return True


# The type of every field a reader uses: a checkpoint edited or written by other code fails
# here, naming the field, instead of deep inside model building.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "version": (int,),
    "model": (dict,),
    "method": (str,),
    "backbone": (str,),
    "hparams": (dict,),
    "num_classes": (int,),
    "epoch": (int,),
    "config": (dict,),
    "history": (list,),
    "optimizer": (dict,),
    "scheduler": (dict,),
    "rng": (dict,),
    "config_hash": (str,),
    "execution": (dict,),
    "dataset": (str,),
}


def _check_fields(checkpoint: dict[str, Any], path: Path) -> None:
    for key, types in _FIELD_TYPES.items():
        value = checkpoint.get(key)
        if key in checkpoint and (isinstance(value, bool) or not isinstance(value, types)):
            raise WsolbenchError(
                f"malformed checkpoint: '{key}' is a {type(value).__name__}, "
                f"expected a {types[0].__name__}",
                path=path,
            )
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in checkpoint["model"].items()):
        raise WsolbenchError("malformed checkpoint: 'model' must map names to tensors", path=path)
    if not 1 <= checkpoint["num_classes"] <= 100_000:
        raise WsolbenchError(
            f"malformed checkpoint: num_classes = {checkpoint['num_classes']}", path=path
        )
    if not all(isinstance(row, dict) for row in checkpoint.get("history", [])):
        raise WsolbenchError("malformed checkpoint: 'history' must be a list of tables", path=path)
    for key, tensor in checkpoint["model"].items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WsolbenchError(
                f"the checkpoint's weights are broken: '{key}' holds NaN or inf", path=path
            )
    checkpoint.setdefault("config", {})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def check_resume_fields(checkpoint: dict[str, Any], path: Path) -> None:
    """Before a resume reads any data: the fields it restores (epoch, optimizer, scheduler,
    RNG states, history) have the shapes `train` writes; the first that does not is named."""

    def bad(field: str, what: str):
        return WsolbenchError(f"cannot resume: the checkpoint's '{field}' {what}", path=path)

    for key in ("epoch", "optimizer", "scheduler", "rng"):
        if key not in checkpoint:
            raise bad(key, "is missing")
    if checkpoint["epoch"] < 0:
        raise bad("epoch", f"is {checkpoint['epoch']}")
    optimizer = checkpoint["optimizer"]
    groups = optimizer.get("param_groups")
    if not isinstance(optimizer.get("state"), dict) or not isinstance(groups, list):
        raise bad("optimizer", "is not an optimizer state (state, param_groups)")
    for group in groups:
        if not isinstance(group, dict) or not _number(group.get("lr")):
            raise bad("optimizer", "has a parameter group without a finite lr")
        params = group.get("params")
        if not isinstance(params, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) for p in params
        ):
            raise bad("optimizer", "has a parameter group without parameter indices")
    for state in optimizer["state"].values():
        if not isinstance(state, dict) or not all(
            torch.is_tensor(v) or _number(v) for v in state.values()
        ):
            raise bad("optimizer", "holds a parameter state that is not tensors and numbers")
    scheduler = checkpoint["scheduler"]
    if not isinstance(scheduler.get("last_epoch"), int) or not isinstance(
        scheduler.get("base_lrs"), list
    ):
        raise bad("scheduler", "is not a scheduler state (last_epoch, base_lrs)")
    if not all(_number(lr) for lr in scheduler["base_lrs"]):
        raise bad("scheduler", "has a base lr that is not a finite number")
    rng = checkpoint["rng"]
    python, numpy_state = rng.get("python"), rng.get("numpy")
    if not (
        isinstance(python, (list, tuple))
        and len(python) == 3
        and isinstance(python[1], (list, tuple))
        and all(isinstance(v, int) for v in python[1])
    ):
        raise bad("rng", "has no Python random state")
    if not (
        isinstance(numpy_state, dict)
        and isinstance(numpy_state.get("kind"), str)
        and torch.is_tensor(numpy_state.get("keys"))
        and numpy_state["keys"].shape == (624,)
        and all(isinstance(numpy_state.get(k), int) for k in ("position", "has_gauss"))
        and _number(numpy_state.get("gauss"))
    ):
        raise bad("rng", "has no NumPy random state")
    torch_state = rng.get("torch")
    if not (torch.is_tensor(torch_state) and torch_state.dtype == torch.uint8):
        raise bad("rng", "has no torch random state")
    for row in checkpoint.get("history", []):
        if not all(_number(row.get(k)) for k in ("epoch", "loss", "seconds")):
            raise bad("history", "has an epoch without epoch, loss and seconds numbers")


def restore_training_state(checkpoint: dict[str, Any], optimizer, scheduler, path: Path) -> None:
    """Load the optimizer, scheduler and RNG states of a checkpoint to resume; one that does
    not fit the model is one error."""
    for field, restore in (
        ("optimizer", lambda: optimizer.load_state_dict(checkpoint["optimizer"])),
        ("scheduler", lambda: scheduler.load_state_dict(checkpoint["scheduler"])),
        ("rng", lambda: set_rng_state(checkpoint["rng"])),
    ):
        try:
            restore()
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as error:
            detail = " ".join(str(error).split())[:160]
            raise WsolbenchError(
                f"cannot resume: the checkpoint's '{field}' does not fit this run ({detail})",
                path=path,
            ) from None


def trained_image_size(checkpoint: dict[str, Any], path: str | Path) -> int:
    """The training image size recorded in a checkpoint's config (224 when absent)."""
    size = checkpoint.get("config", {}).get("image_size", 224)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 4096:
        raise WsolbenchError(f"malformed checkpoint: config.image_size = {size!r}", path=path)
    return size


def checkpoint_hash(checkpoint: str | Path | dict[str, Any]) -> str:
    """The weights hash (``identity.weights_hash``) of a checkpoint's model state, given its
    path or the loaded checkpoint: recorded as provenance in every result row. Not the file's
    hash: the file also holds per-epoch wall times, so identical trainings differ there."""
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    return weights_hash(checkpoint["model"])


def build_from_checkpoint(checkpoint: dict[str, Any]) -> torch.nn.Module:
    """The method described by a loaded checkpoint, with its weights (train mode)."""
    from wsolbench.registry import create_method

    config = checkpoint.get("config") or {}
    hparams = {k: v for k, v in checkpoint["hparams"].items() if k not in COMMON_ARGUMENTS}
    method = create_method(
        checkpoint["method"],
        backbone=checkpoint["backbone"],
        num_classes=int(checkpoint["num_classes"]),
        pretrained=False,  # the checkpoint holds every weight
        weights=None,
        large_feature_map=bool(config.get("large_feature_map", False)),
        **hparams,
    )
    method.load_state_dict(checkpoint["model"])
    return method


def load_model(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a trained method from a checkpoint, in eval mode on `device`."""
    return model_from_checkpoint(load_checkpoint(path), path, device)


def model_from_checkpoint(
    checkpoint: dict[str, Any], path: str | Path, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """`load_model` for a checkpoint already loaded (so callers that also need its config or
    history read the file once); `path` names the file in errors."""
    try:
        method = build_from_checkpoint(checkpoint)
    except WsolbenchError as error:
        raise WsolbenchError(
            f"cannot rebuild the checkpoint's model: {error.message}", path=path
        ) from None
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())[:300]  # load_state_dict's report spans lines
        raise WsolbenchError(f"checkpoint does not match its method: {detail}", path=path) from None
    return method.to(device).eval()


# -- checkpoints of the reference code ----------------------------------------------------------
def load_reference_state(
    method: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path = "state_dict"
) -> torch.nn.Module:
    """Load a state dict keyed by the reference code's names (wsolevaluation's, or the SPA,
    BAS, TS-CAM or SCM code's) into ``method`` through ``method.reference_names()``.

    Every tensor must be known, present and of the right shape (BatchNorm's
    ``num_batches_tracked`` counters may be absent); anything else is one WsolbenchError
    naming the keys. DataParallel's ``module.`` prefix is removed first.
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    broken = next(
        (
            k
            for k, v in state.items()
            if v.is_floating_point() and not bool(torch.isfinite(v).all())
        ),
        None,
    )
    if broken is not None:
        raise WsolbenchError(f"the weights are broken: '{broken}' holds NaN or inf", path=source)
    here_by_reference = {ref: here for here, ref in method.reference_names().items()}
    own = method.state_dict()
    # Layers the reference builds but never calls (SPA's conv5_add) have no counterpart here.
    unused = getattr(method, "reference_unused_prefixes", ())
    state = {
        k: v for k, v in state.items() if not k.startswith(tuple(unused)) or k in here_by_reference
    }
    unknown = sorted(set(state) - set(here_by_reference))
    missing = sorted(
        ref
        for ref in here_by_reference
        if ref not in state and not ref.endswith("num_batches_tracked")
    )
    mismatched = sorted(
        f"{ref} {tuple(state[ref].shape)} != {tuple(own[here].shape)} expected"
        for ref, here in here_by_reference.items()
        if ref in state and state[ref].shape != own[here].shape
    )
    problems = []
    for label, keys in (("unknown", unknown), ("missing", missing), ("shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" ... (+{len(keys) - 5})" if len(keys) > 5 else "")
            problems.append(f"{len(keys)} {label} key(s): {shown}")
    if problems:
        raise WsolbenchError(
            f"weights do not fit {type(method).__name__} on {method.hparams.get('backbone')} "
            f"(check method, backbone, num_classes, large_feature_map): " + "; ".join(problems),
            path=source,
        )
    method.load_state_dict({here_by_reference[k]: v for k, v in state.items()}, strict=False)
    return method


def import_reference_checkpoint(
    path: str | Path,
    method: str,
    backbone: str,
    num_classes: int,
    large_feature_map: bool = False,
    out: str | Path | None = None,
    **hparams: Any,
) -> torch.nn.Module:
    """A model trained with the reference code (wsolevaluation's ``main.py`` checkpoints, the
    SPA code's, BAS's bare or ``module.``-prefixed state dicts, TS-CAM's and SCM's
    ``{epoch, state_dict, best_map}``), as a wsolbench method in eval mode; with ``out``, also
    written as a wsolbench checkpoint (``load_model`` / ``--checkpoint`` read it).

    The file is read with ``torch.load(weights_only=True)``: its tensors are mapped by the
    method's ``reference_names()`` (see ``load_reference_state``).
    """
    from wsolbench.registry import create_method

    path = Path(path)
    if not path.is_file():
        raise WsolbenchError("reference checkpoint not found", path=path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (unpickling fails in many types; all mean "refused")
        raise WsolbenchError(
            f"cannot read the reference checkpoint with weights_only=True ({type(error).__name__})",
            path=path,
        ) from None
    state = payload
    for wrapper in ("state_dict", "model"):  # the references' own checkpoint dicts
        if isinstance(payload, dict) and isinstance(payload.get(wrapper), dict):
            state = payload[wrapper]
            break
    if (
        not isinstance(state, dict)
        or not state
        or not all(torch.is_tensor(v) for v in state.values())
    ):
        raise WsolbenchError(
            "no state dict (a dict of tensors, or one under 'state_dict')", path=path
        )
    model = create_method(
        method,
        backbone=backbone,
        num_classes=int(num_classes),
        pretrained=False,
        weights=None,
        large_feature_map=bool(large_feature_map),
        **hparams,
    )
    load_reference_state(model, state, source=path)
    if out is not None:
        save_checkpoint(
            out,
            {
                "model": model.state_dict(),
                "method": method,
                "backbone": backbone,
                "hparams": {k: v for k, v in model.hparams.items() if k not in COMMON_ARGUMENTS},
                "num_classes": int(num_classes),
                "config": {"large_feature_map": bool(large_feature_map)},
                "imported_from": str(path),
            },
        )
    return model.eval()
