"""SCG speed (and memory) against the VGG16 forward pass of the same batch, in one run.

    python benchmarks/bench_scg.py                       # batch 32, CUDA when present
    python benchmarks/bench_scg.py --device cpu --repeats 1
    python benchmarks/bench_scg.py --memory              # + peak extra memory, 28x28 taps, batch 64

Cases: VGG16-like taps (two layers, 512 channels, 14 x 14) and 28 x 28 taps (the
large-feature-map grid), official variant, ILSVRC thresholds, original size 224. The reference is
``torchvision.models.vgg16`` (random init) on a (N, 3, 224, 224) batch. Goal: SCG <= 10% of it.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch
import torchvision
from rich.console import Console
from rich.table import Table

from wsolbench.methods.scg import SCG


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device: torch.device, repeats: int, warmup: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scg_inputs(batch: int, grid: int, channels: int, device: torch.device, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    taps = [
        torch.rand(batch, channels, grid, grid, generator=generator).to(device) for _ in range(2)
    ]
    cam = torch.randn(batch, grid, grid, generator=generator).to(device)
    return taps, cam


def peak_extra_memory(batch: int, grid: int, channels: int, device: torch.device) -> float:
    """MiB SCG needs beyond its inputs (CUDA: allocator peak; CPU: peak RSS growth)."""
    taps, cam = scg_inputs(batch, grid, channels, device)
    scg = SCG()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        scg(cam, taps, (224, 224))
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    before = _peak_rss_mib()
    scg(cam, taps, (224, 224))
    return _peak_rss_mib() - before


def _peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec; ru_maxrss (the
    fallback) may carry the parent's peak over a fork, so it is only used off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="images per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs, the median is kept (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs first (default: %(default)s)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="also measure SCG's peak extra memory, 28x28, batch 64",
    )
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if args.memory_only:  # in a fresh process, so the CPU peak RSS is SCG's own
        print(f"{peak_extra_memory(64, 28, 512, device):.1f}")
        return
    console = Console()
    torch.manual_seed(0)
    with torch.no_grad():
        vgg = torchvision.models.vgg16(weights=None).to(device).eval()
        images = torch.randn(args.batch_size, 3, 224, 224, device=device)
        forward = time_call(
            lambda vgg=vgg, images=images: vgg(images), device, args.repeats, args.warmup
        )
        del vgg, images
        rows = []
        for grid in (14, 28):
            taps, cam = scg_inputs(args.batch_size, grid, 512, device)
            scg = SCG()
            seconds = time_call(
                lambda scg=scg, cam=cam, taps=taps: scg(cam, taps, (224, 224)),
                device,
                args.repeats,
                args.warmup,
            )
            rows.append((f"SCG, 2 x 512 x {grid}x{grid}", seconds))
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    table = Table(
        title=f"SCG vs VGG16 forward, batch {args.batch_size}, {name}, torch {torch.__version__}"
    )
    for column in ("what", "ms / batch", "% of VGG16 forward"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_row("VGG16 forward, 224", f"{forward * 1e3:.1f}", "100.0")
    for label, seconds in rows:
        table.add_row(label, f"{seconds * 1e3:.1f}", f"{100 * seconds / forward:.1f}")
    console.print(table)
    if args.memory:
        result = subprocess.run(
            [sys.executable, __file__, "--memory-only", "--device", str(device)],
            capture_output=True,
            text=True,
            check=True,
        )
        console.print(
            f"SCG peak extra memory, 28x28 taps x 512 channels, batch 64: "
            f"{float(result.stdout.strip()):.0f} MiB (goal <= 1024)"
        )


if __name__ == "__main__":
    main()
