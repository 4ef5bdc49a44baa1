"""Score maps on disk: wsolevaluation's ``<root>/<image_id>.npy`` layout.

``normalize="minmax"`` reproduces wsolevaluation's CAM computer (docs/protocols.md sec. 2.1): bicubic
resize to 224 x 224 (or ``size``), then NaN or constant -> zeros, else ``s -= min; s /= max`` in
float64. Without it a map must already be a finite 2-D array in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numba import njit

from wsolbench.errors import ScoreMapError

NORMALIZE_CHOICES = ("none", "minmax")


def scoremap_path(root: str | Path, image_id: str) -> Path:
    return Path(root) / f"{image_id}.npy"


def load_scoremap(
    path: str | Path, normalize: str = "none", size: tuple[int, int] = (224, 224)
) -> np.ndarray:
    """Read one map safely (``allow_pickle=False``) and check or normalize it; ``size`` is
    ``(height, width)`` for ``minmax``. Every error names the file."""
    path = Path(path)
    if not path.is_file():
        raise ScoreMapError("score map not found", path)
    scoremap = _read_npy(path)
    if normalize == "minmax":
        return minmax_normalize(scoremap, size)
    if normalize != "none":
        raise ScoreMapError(f"unknown normalization {normalize!r}", path)
    if not np.isfinite(scoremap).all():
        raise ScoreMapError(
            "score map has NaN or infinite values (use --normalize minmax to "
            "zero them as wsolevaluation does)",
            path,
        )
    low, high = scoremap.min(), scoremap.max()
    if low < 0 or high > 1:
        raise ScoreMapError(
            f"score map values must lie in [0, 1], found [{low:g}, {high:g}] "
            "(use --normalize minmax)",
            path,
        )
    return scoremap


def layout_header(path: str | Path, shape: tuple[int, ...], dtype=np.float64) -> bytes | None:
    """The bytes before the data of a .npy file (magic, version, header) when they describe a
    C-order array of ``shape`` and the native ``dtype``, for ``read_scoremap_into`` to recognise
    the files of that layout; None otherwise (or unreadable: the safe path reports it)."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            found, fortran, found_dtype = read(file)
            size = file.tell()
            file.seek(0)
            header = file.read(size)
    except (OSError, ValueError):
        return None
    if fortran or tuple(found) != tuple(shape) or found_dtype != np.dtype(dtype).newbyteorder("="):
        return None
    return header


def read_scoremap_into(path: str | Path, out: np.ndarray, header: bytes) -> bool:
    """The fast path of ``load_scoremap`` for maps of one layout (wsolevaluation writes every map
    alike): when the file starts with ``header`` (that of a map ``load_scoremap`` accepted, whose
    dtype and shape are ``out``'s), read its data straight into ``out`` and check it in one pass.
    False when anything differs (another header, a short file, a value outside [0, 1] or NaN):
    then ``load_scoremap`` reads the file and names what is wrong."""
    try:
        with open(path, "rb", buffering=0) as file:
            if file.read(len(header)) != header:
                return False
            data = memoryview(out).cast("B")
            if file.readinto(data) != len(data):
                return False
    except OSError:
        return False
    return in_unit_range(out)


@njit(cache=True, nogil=True)
def in_unit_range(values) -> bool:
    """Every value finite and in [0, 1] (one pass, no temporaries; NaN fails the test)."""
    for v in values.ravel():
        if not (v >= 0 and v <= 1):
            return False
    return True


MAX_SIDE = 16384  # a larger map is a corrupt header, not a score map


def load_raw_map(path: str | Path) -> np.ndarray:
    """A raw class map as a model wrote it, for a protocol to prepare by its own rules: a 2-D
    map (the GT class's) or a 3-D stack (C, H, W) of every class's, any size and range; every
    error names the file."""
    path = Path(path)
    if not path.is_file():
        raise ScoreMapError("score map not found", path)
    return _read_npy(path, dims=(2, 3))


def _read_npy(path: Path, dims: tuple[int, ...] = (2,)) -> np.ndarray:
    """Read a .npy file whose header says: a 2-D (or ``dims``-D) real array of sane size (checked before the
    data is read, so a corrupt header cannot ask for terabytes), any byte order; every failure
    (truncated data, pickles, .npz, text) is one ScoreMapError naming the file."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)  # the header only, so far
        if not isinstance(mapped, np.ndarray):
            raise ScoreMapError("not a .npy array (an .npz archive?)", path)
        shape, dtype = mapped.shape, mapped.dtype
        if len(shape) not in dims or min(shape) == 0 or max(shape) > MAX_SIDE:
            what = " or ".join(f"{d}-D" for d in dims)
            raise ScoreMapError(
                f"score map must be a non-empty {what} array of at most {MAX_SIDE} per side, "
                f"got shape {shape}",
                path,
            )
        if dtype.kind not in "iuf":
            raise ScoreMapError(f"score map must be real-valued, got dtype {dtype}", path)
        scoremap = np.array(mapped)
        del mapped
    except ScoreMapError:
        raise
    except OSError as error:
        raise ScoreMapError(f"cannot read score map: {error.strerror or error}", path) from None
    except Exception as error:  # ValueError, EOFError, header SyntaxError...: all malformed
        detail = " ".join(str(error).split())[:120] or type(error).__name__
        if "Python objects" in detail or "pickle" in detail:
            detail = "it holds Python objects: pickled objects are refused"
        raise ScoreMapError(f"not a valid .npy score map ({detail})", path) from None
    return scoremap.astype(scoremap.dtype.newbyteorder("="), copy=False)


def minmax_normalize(scoremap: np.ndarray, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """wsolevaluation's ``normalize_scoremap`` after a bicubic resize to ``(height, width)``."""
    height, width = size
    cam = np.asarray(scoremap)
    if cam.dtype not in (np.float32, np.float64):
        cam = cam.astype(np.float32)
    if cam.shape != (height, width):
        cam = cv2.resize(cam, (width, height), interpolation=cv2.INTER_CUBIC)
    if np.isnan(cam).any():
        return np.zeros((height, width), np.float64)
    if cam.min() == cam.max():
        return np.zeros((height, width), np.float64)
    cam = cam.astype(np.float64)
    cam -= cam.min()
    cam /= cam.max()
    return cam
