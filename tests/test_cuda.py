"""CUDA paths give the CPU's numbers: with the same network outputs, every count, map and metric
is the same bits on the GPU as on the CPU (the post-processors and the protocols prepare maps on
the CPU with OpenCV and numpy, whatever the device); the network itself within float32
tolerance (its convolutions are the device's arithmetic).

Marked `gpu`: tests/conftest.py skips them, with the reason, where torch.cuda.is_available() is
false; on a GPU machine they run with the rest (`make test`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsolbench import create_postprocessor, list_postprocessors
from wsolbench.evaluation import (
    BoxAccumulator,
    ClassicLocAccumulator,
    PeakAccumulator,
    PxAPAccumulator,
)
from wsolbench.methods.scg import SCG

pytestmark = pytest.mark.gpu

DEVICE = torch.device("cuda")


@pytest.fixture(autouse=True)
def full_float32():
    """Full float32 convolutions and matrix products on the GPU (cuDNN's default TF32 changes
    the numbers by far more than float32 rounding)."""
    backends = [torch.backends.cudnn.conv, torch.backends.cuda.matmul]
    if all(hasattr(b, "fp32_precision") for b in backends):  # torch >= 2.9
        saved = [b.fp32_precision for b in backends]
        for backend in backends:
            backend.fp32_precision = "ieee"
        yield
        for backend, value in zip(backends, saved):
            backend.fp32_precision = value
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _accumulators() -> dict:
    return {
        "box": BoxAccumulator(0.01, (30, 50, 70)),
        "pxap": PxAPAccumulator(0.01),
        "peak": PeakAccumulator(),
        "classic": ClassicLocAccumulator((0.1, 0.3, 0.5)),
    }


def _update(accumulators: dict, batch: dict) -> None:
    accumulators["box"].update(batch["scoremaps"], batch["gt_boxes"])
    accumulators["pxap"].update(batch["scoremaps"], batch["gt_masks"])
    accumulators["peak"].update(batch["peak_maps"], batch["peak_masks"])
    accumulators["classic"].update(
        batch["labels"],
        batch["top5"],
        batch["loc_maps"],
        batch["gt_loc_maps"],
        batch["gt_boxes_original"],
    )


def _evaluation_batch(device, n: int = 12, size: int = 24, seed: int = 0) -> dict:
    """Random maps (float32 tensors on `device`) with boxes, masks and predictions."""
    rng = np.random.default_rng(seed)
    maps = rng.random((n, size, size)).astype(np.float32)
    maps *= np.arange(size)[None, None, :] < rng.integers(6, size, (n, 1, 1))  # some structure
    maps /= maps.max(axis=(1, 2), keepdims=True)
    x0, y0 = rng.integers(0, size // 2, (2, n))
    boxes = [
        np.array([[a, b, a + int(rng.integers(3, size // 2)), size - 1]]) for a, b in zip(x0, y0)
    ]
    masks = maps > rng.uniform(0.2, 0.6, (n, 1, 1))
    labels = np.arange(n) % 3
    top5 = np.stack([np.roll(np.arange(5), -int(r)) for r in rng.integers(0, 5, n)])
    tensor = torch.from_numpy(maps).to(device)
    return {
        "scoremaps": tensor,
        "gt_boxes": boxes,
        "gt_masks": masks,
        "peak_maps": list(tensor * 3.0 - 1.0),  # raw maps of any range
        "peak_masks": list(masks),
        "labels": labels,
        "top5": top5,
        "loc_maps": [torch.stack([m, m.flip(0), m.flip(1), m.t(), m]) for m in tensor],
        "gt_loc_maps": list(tensor),
        "gt_boxes_original": boxes,
    }


def test_accumulator_counts_on_cuda_equal_the_cpu_counts_exactly():
    cpu, cuda = _accumulators(), _accumulators()
    for seed in (0, 1):  # two batches
        _update(cpu, _evaluation_batch("cpu", seed=seed))
        _update(cuda, _evaluation_batch(DEVICE, seed=seed))
    for name, accumulator in cpu.items():
        expected, state = accumulator.metric_state, cuda[name].metric_state
        assert state.keys() == expected.keys(), name
        for key, value in expected.items():
            assert torch.equal(state[key].cpu(), value), (name, key)
        assert cuda[name].compute() == accumulator.compute(), name
    results = {**cpu["box"].compute(), **cpu["pxap"].compute()}
    assert 0 < results["MaxBoxAccV2"] < 100 and 0 < results["PxAP"] < 100  # the counts are used


def test_scoring_with_maps_and_taps_on_cuda_equals_the_cpu(tiny_run):
    """The bench's scoring of the same predictions with the class maps and taps on the GPU:
    every count, every metric and every per-image record equal to the CPU's."""
    from wsolbench.data.datasets import EvalDataset
    from wsolbench.data.metadata import read_split
    from wsolbench.engine.checkpoint import load_model
    from wsolbench.engine.infer import predict
    from wsolbench.evaluation import create_protocols
    from wsolbench.scoring import Scorer

    data = tiny_run.data
    dataset = EvalDataset(
        read_split(data / "metadata" / "test"), data / "images", 32, mask_root=data / "masks"
    )
    protocols = create_protocols({"map_size": 16, "box_thresholds": [0.1, 0.3]})
    model = load_model(tiny_run.checkpoint)
    batches = list(predict(model, dataset, batch_size=4, ten_crop=False))
    for name in ("none", "scg"):
        pp = create_postprocessor(name)
        cpu, cuda = (Scorer(protocols, boxes=True, masks=True).keep_per_image() for _ in range(2))
        for batch in batches:
            cpu.update(batch, pp)
            on_gpu = {k: batch[k].to(DEVICE) for k in ("cams_gt", "cams_topk")}
            cuda.update({**batch, **on_gpu, "taps": [t.to(DEVICE) for t in batch["taps"]]}, pp)
        choice = {"spa": {"box_threshold": 0.1}}
        expected, got = cpu.evaluator.results(choice), cuda.evaluator.results(choice)
        assert got.keys() == expected.keys() == {"spa", "wsolevaluation", "peak"}
        assert got == expected, name
        assert cuda.evaluator.curves() == cpu.evaluator.curves(), name
        state, cuda_state = cpu.evaluator.state_dict(), cuda.evaluator.state_dict()
        assert state.keys() == cuda_state.keys()
        for metric, counts in state.items():  # every integer count of every accumulator
            for key, value in counts.items():
                ours, theirs = _tensors(value), _tensors(cuda_state[metric][key])
                assert len(ours) == len(theirs), (name, key)
                assert all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(ours, theirs)), key
        records, cuda_records = cpu.per_image_arrays(), cuda.per_image_arrays()
        assert records.keys() == cuda_records.keys()
        for key, value in records.items():
            np.testing.assert_array_equal(cuda_records[key], value, err_msg=f"{name} {key}")


def _tensors(state) -> list[torch.Tensor]:
    """A metric state as a list of tensors (sum states are one, `cat` states a list)."""
    return list(state) if isinstance(state, (list, tuple)) else [state]


def _scg_inputs(device, n: int = 3, classes: int = 4, grid: int = 7, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    taps = [torch.rand(n, 16, grid, grid, generator=generator) for _ in range(2)]
    cams = torch.randn(n, classes, grid, grid, generator=generator)
    return cams.to(device), [t.to(device) for t in taps]


def test_scg_on_cuda_equals_the_cpu():
    scg = SCG.from_preset("cub")
    cpu = scg.explain(*_scg_inputs("cpu"), (30, 20))
    cuda = scg.explain(*_scg_inputs(DEVICE), (30, 20))
    for key in ("cam", "object", "background", "grid_final", "final"):
        assert cuda[key].device.type == "cuda", key
        assert torch.equal(cuda[key].cpu(), cpu[key]), key


@pytest.mark.parametrize("name", list_postprocessors())
def test_every_postprocessor_on_cuda_equals_the_cpu(name):
    pp = create_postprocessor(name)
    cams, taps = _scg_inputs("cpu", seed=1)
    expected = pp(cams, taps, (30, 20))
    maps = pp(*_scg_inputs(DEVICE, seed=1), (30, 20))
    assert maps.device.type == "cuda" and maps.shape == expected.shape
    assert torch.equal(maps.cpu(), expected)
    listed = pp(*_scg_inputs(DEVICE, seed=1), [(30, 20), (9, 13), (30, 20)])
    assert all(m.device.type == "cuda" for m in listed)
    assert torch.equal(listed[2].cpu(), expected[2])


def test_inference_on_cuda_matches_the_cpu(tiny_run):
    from wsolbench.data.datasets import EvalDataset
    from wsolbench.data.metadata import read_split
    from wsolbench.engine.checkpoint import load_model
    from wsolbench.engine.infer import predict

    data = tiny_run.data
    dataset = EvalDataset(read_split(data / "metadata" / "test"), data / "images", 32)

    def first_batch(device):
        model = load_model(tiny_run.checkpoint, device=device)
        return next(predict(model, dataset, batch_size=9, device=device, ten_crop=False, topk=2))

    cpu, cuda = first_batch("cpu"), first_batch(DEVICE)
    assert cuda["image_id"] == cpu["image_id"]
    for key in ("logits", "probs", "cams_gt"):
        torch.testing.assert_close(cuda[key].cpu(), cpu[key], atol=1e-4, rtol=1e-4)
