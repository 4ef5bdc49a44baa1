"""One command for the device: `make gpu-check` (or ``python benchmarks/gpu_check.py``).

On a CUDA machine (under 8 minutes on one H100):

1. runs the ``gpu`` tests (``pytest -m gpu``: the CUDA paths against the CPU's numbers);
2. times wsolbench's VGG16-CAM at 224 on the GPU alone (random batches, no loader): a training
   step, inference + SCG (the GT and top-5 maps), and the evaluator's scoring of 224 x 224
   maps, in fp32 and bf16 (autocast; a suite may opt in);
3. with ``--reference`` (a wsolevaluation checkout; ``munch`` on PYTHONPATH), runs
   ``bench_reference_loops.py`` on the GPU: wsolevaluation's CAMComputer and Trainer loops
   against wsolbench's on the same images and weights, wsolbench in fp32 and bf16;
4. writes everything as a Markdown table (``--out``, default ``gpu-check.md``).

Without CUDA it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
BATCH = 64
CLASSES = 200


def gpu_tests() -> str:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
    )
    last = (done.stdout.strip().splitlines() or ["no output"])[-1]
    status = "passed" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
    return f"`pytest -m gpu`: {status}: {last} ({time.perf_counter() - start:.0f} s)"


def rate(step, batch: int, device, seconds: float = 6.0, warmup: int = 3) -> float:
    """Images/s of ``step()`` (one batch), timed for about ``seconds`` after a warm-up."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
        if count % 5 == 0:
            sync()
    sync()
    return count * batch / (time.perf_counter() - start)


def gpu_rates(precision: str, device: str = "cuda", batch_size: int = BATCH) -> dict:
    """wsolbench on the GPU alone: training step, inference + SCG, scoring (images/s)."""
    from wsolbench.engine.infer import _predict_batch, tap_names
    from wsolbench.evaluation import BoxAccumulator
    from wsolbench.registry import create_method, create_postprocessor

    device, amp = torch.device(device), precision == "bf16"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp)
    model = create_method("cam", backbone="vgg16", num_classes=CLASSES).to(device)
    model = model.to(memory_format=torch.channels_last)
    images = torch.randn(batch_size, 3, 224, 224, device=device).contiguous(
        memory_format=torch.channels_last
    )
    labels = torch.randint(0, CLASSES, (batch_size,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9, nesterov=True)

    def train_step():
        model.train()
        batch, targets = model.prepare_batch(images, labels)
        with autocast:
            loss = model.loss(model(batch, labels), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    scg = create_postprocessor("scg")
    names = tap_names(model)
    batch = {"image": images, "label": labels, "size": [(224, 224)] * batch_size}

    def infer_step():
        model.eval()
        with torch.no_grad():
            out = _predict_batch(model, batch, device, False, 5, names, amp, False)
            classes = torch.cat([out["cams_gt"][:, None], out["cams_topk"]], dim=1)
            scg(classes, out["taps"], (224, 224))

    maps = torch.rand(256, 224, 224, device=device)
    boxes = [[[40, 40, 180, 180]]] * 256
    scorer = BoxAccumulator(0.001)

    def score_step():
        scorer.update(maps, boxes)

    return {
        "training step": rate(train_step, batch_size, device),
        "inference + SCG (GT + top-5 maps)": rate(infer_step, batch_size, device),
        "scoring, MaxBoxAcc V1 + V2 at 0.001": rate(score_step, 256, device, warmup=1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", type=Path, default=None, help="wsolevaluation checkout")
    parser.add_argument("--workdir", type=Path, default=Path("gpu-check-work"))
    parser.add_argument("--out", type=Path, default=Path("gpu-check.md"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False); nothing run")
        return 0
    started = time.perf_counter()
    props = torch.cuda.get_device_properties(0)
    lines = [
        f"# gpu-check: {props.name}, {props.total_memory / 2**30:.0f} GiB, torch "
        f"{torch.__version__}, CUDA {torch.version.cuda}",
        "",
        gpu_tests(),
        "",
        "## wsolbench on the GPU alone (VGG16-CAM, 224 px, 200 classes, batch 64, no loader)",
        "",
        "| what | fp32 img/s | bf16 img/s |",
        "|---|---:|---:|",
    ]
    rates = {precision: gpu_rates(precision) for precision in ("fp32", "bf16")}
    for what in rates["fp32"]:
        lines.append(f"| {what} | {rates['fp32'][what]:.0f} | {rates['bf16'][what]:.0f} |")
    lines.append("")
    if args.reference is None:
        lines.append("wsolevaluation's loops not run: give --reference (a checkout).")
    else:
        figures = args.workdir / "loops.json"
        loops = [sys.executable, str(HERE / "bench_reference_loops.py")]
        loops += ["--reference", str(args.reference), "--workdir", str(args.workdir)]
        loops += ["--images", "512", "--train-images", "640", "--batch-size", "64"]
        loops += ["--train-batch-size", "64", "--train-crop", "224", "--workers", "8"]
        loops += ["--device", "cuda", "--precisions", "fp32,bf16", "--json", str(figures)]
        subprocess.run(loops, check=True)
        lines += [
            "## Against wsolevaluation's loops on this GPU (same JPEGs, same weights; the "
            "reference runs fp32)",
            "",
            "| stage | wsolbench | wsolevaluation img/s | wsolbench img/s | ratio |",
            "|---|---|---:|---:|---:|",
        ]
        for row in json.loads(figures.read_text()):
            lines.append(
                f"| {row['stage']} | {row['precision']} | {row['reference']:.1f} | "
                f"{row['wsolbench']:.1f} | {row['wsolbench'] / row['reference']:.2f}x |"
            )
    lines += ["", f"({time.perf_counter() - started:.0f} s)"]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
