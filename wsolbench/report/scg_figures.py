"""SCG pictures (matplotlib, Agg backend): the self-correlation maps of chosen points over the
image (the SPA paper's Fig. 1) and the SCG process per image: CAM, object map, background map,
final map (Fig. 6). Every function writes PNG files atomically and returns their paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from wsolbench.methods.scg import SCG  # noqa: E402
from wsolbench.report.figures import _save as save_figure  # noqa: E402  (tight layout, atomic PNG)

Point = tuple[float, float]  # (y, x) as fractions of the image height and width, in [0, 1]


def plot_self_correlation(
    image: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    grid: tuple[int, int],
    points: Sequence[Point],
    path: Path,
    title: str = "",
) -> Path:
    """One row per point: the image with the point, its first- and its second-order map.

    ``first`` / ``second`` are (P, P) matrices with the map of point j in column j.
    """
    figure, axes = plt.subplots(len(points), 3, squeeze=False, figsize=(7.2, 2.4 * len(points)))
    height, width = image.shape[:2]
    for row, (y, x) in enumerate(points):
        index = grid_index(grid, (y, x))
        for column, (label, matrix) in enumerate(
            (("image", None), ("first order", first), ("second order", second))
        ):
            axis = axes[row][column]
            overlay = None if matrix is None else _unit_range(matrix[:, index].reshape(grid))
            _show(axis, image, overlay)
            axis.plot(
                [x * (width - 1)],
                [y * (height - 1)],
                marker="*",
                color="white",
                markeredgecolor="black",
                markersize=11,
            )
            if row == 0:
                axis.set_title(label, fontsize=9)
    if title:
        figure.suptitle(title, fontsize=9)
    save_figure(figure, path)
    return Path(path)


def plot_scg_process(
    image: np.ndarray, maps: dict[str, np.ndarray], path: Path, title: str = ""
) -> Path:
    """Image, CAM, object map a, background map b and the final SCG map, side by side."""
    panels = (
        ("image", None),
        ("CAM", "cam"),
        ("object map", "object"),
        ("background map", "background"),
        ("SCG map", "final"),
    )
    figure, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(2.2 * len(panels), 2.5))
    for axis, (label, key) in zip(axes[0], panels):
        _show(axis, image, None if key is None else maps[key])
        axis.set_title(label, fontsize=9)
    if title:
        figure.suptitle(title, fontsize=9)
    save_figure(figure, path)
    return Path(path)


def grid_index(grid: tuple[int, int], point: Point) -> int:
    """Row-major index of the grid cell holding a point given as (y, x) fractions."""
    row = min(grid[0] - 1, max(0, int(point[0] * grid[0])))
    column = min(grid[1] - 1, max(0, int(point[1] * grid[1])))
    return row * grid[1] + column


def default_points(cam: torch.Tensor) -> list[Point]:
    """The CAM's peak (on the object) and its lowest point (background), as (y, x) fractions."""
    height, width = cam.shape
    points = []
    for index in (int(cam.argmax()), int(cam.argmin())):
        points.append(((index // width + 0.5) / height, (index % width + 0.5) / width))
    return points


def scg_figures_for_image(
    scg: SCG,
    image: np.ndarray,
    cam: torch.Tensor,
    taps: list[torch.Tensor],
    out_dir: Path,
    stem: str,
    points: Sequence[Point] | None = None,
) -> list[Path]:
    """Both figures for one image: ``cam`` (h, w) raw class map, ``taps`` (1, C, h, w) each."""
    height, width = image.shape[:2]
    maps = scg.explain(cam[None], taps, (height, width))
    first, grid = _with_mode(scg, "first").fused_correlation(taps)
    second, _ = _with_mode(scg, "second").fused_correlation(taps)
    points = list(points) if points else default_points(maps["cam"][0])
    arrays = {key: maps[key][0].cpu().numpy() for key in ("cam", "object", "background", "final")}
    return [
        plot_self_correlation(
            image,
            first[0].cpu().numpy(),
            second[0].cpu().numpy(),
            grid,
            points,
            out_dir / f"{stem}_self_correlation.png",
            title=stem,
        ),
        plot_scg_process(image, arrays, out_dir / f"{stem}_scg_process.png", title=stem),
    ]


def _with_mode(scg: SCG, mode: str) -> SCG:
    return SCG(**{**vars(scg), "mode": mode})


def _unit_range(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low + 1e-10)


def _show(axis, image: np.ndarray, overlay: np.ndarray | None) -> None:
    height, width = image.shape[:2]
    extent = (0, width, height, 0)  # maps of any resolution stretch over the whole image
    axis.imshow(image, extent=extent)
    if overlay is not None:
        axis.imshow(
            np.asarray(overlay, float),
            cmap="jet",
            alpha=0.5,
            vmin=0,
            vmax=1,
            extent=extent,
            interpolation="bilinear",
        )
    axis.set_xticks([])
    axis.set_yticks([])


def render_scg_figures(
    model: torch.nn.Module,
    dataset,
    out_dir: Path,
    scg: SCG,
    num_images: int = 4,
    points: Sequence[Point] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[Path]:
    """Both figures for the first ``num_images`` images of an ``EvalDataset``, GT class maps.

    The model is a wsolbench method (its maps read through ``class_maps``); SCG uses the taps
    its backbone names in ``scg_taps``, and the original image size for the resize round trip.
    """
    from wsolbench.data.datasets import load_image
    from wsolbench.engine.infer import class_maps, tap_names
    from wsolbench.engine.progress import make_progress
    from wsolbench.errors import WsolbenchError

    names = tap_names(model)
    if not names:
        raise WsolbenchError("the model's backbone names no scg_taps: SCG needs two feature taps")
    model = model.to(device).eval()
    written: list[Path] = []
    count = min(num_images, len(dataset))
    with make_progress(enabled=progress) as bar:
        task = bar.add_task("scg figures", total=count)
        for index in range(count):
            item = dataset[index]
            with torch.no_grad():
                outputs = model(item["image"][None].to(device))
            taps = [outputs["taps"][name].float() for name in names]
            cam = class_maps(model, outputs, torch.tensor([[item["label"]]]))[0, 0].float()
            original = load_image(dataset.image_root, item["image_id"], dataset.ids_file, index + 1)
            stem = f"{index:03d}_" + Path(item["image_id"]).with_suffix("").as_posix().replace(
                "/", "_"
            )
            written += scg_figures_for_image(
                scg, np.asarray(original), cam, taps, Path(out_dir), stem, points
            )
            bar.advance(task)
    return written
