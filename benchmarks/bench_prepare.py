"""What preparing maps the references' way costs: the post-processors on the CPU, per image.

    python benchmarks/bench_prepare.py                          # this checkout
    python benchmarks/bench_prepare.py --baseline /path/to/old  # + another checkout, same run

Per image, the maps `wsolbench bench` post-processes (the GT class and the top-5 classes, six
maps) from raw class maps to the original size (500 x 375, CUB's typical size): ``identity``
(ReLU, min-max, ``cv2.resize``) and ``scg`` (official, ILSVRC thresholds) on VGG16-like taps
(2 x 512 x 14 x 14) and large-feature-map taps (2 x 512 x 28 x 28). Inputs are made on the CPU.
Everything after the network runs on the CPU, whatever the device (docs/protocols.md sec. 9):
on a GPU machine these are the times added beside the network's.

``--baseline PATH`` runs the same cases with the code of another checkout (its ``wsolbench``,
``methods`` and ``evaluation`` folders laid out as a package under PATH, e.g. from
``git archive``) in a subprocess, and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

SIZE = (375, 500)  # (H, W): CUB's typical original size
CASES = (("identity", 14), ("scg", 14), ("scg", 28))


def measure(batch: int, repeats: int) -> dict[str, float]:
    """Median ms per image of each case, with the wsolbench found on sys.path."""
    import wsolbench.methods.postprocess  # noqa: F401  (registers identity and scg)
    from wsolbench.registry import create_postprocessor

    generator = torch.Generator().manual_seed(0)
    out = {}
    for name, grid in CASES:
        cams = torch.randn(batch, 6, grid, grid, generator=generator)
        taps = [torch.rand(batch, 512, grid, grid, generator=generator) for _ in range(2)]
        options = {"fo_th": 0.2, "so_th": 0.2, "so_weight": 1.0} if name == "scg" else {}
        pp = create_postprocessor(name, **options)
        pp(cams, taps, SIZE)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            pp(cams, taps, SIZE)
            times.append(time.perf_counter() - start)
        out[f"{name} {grid}x{grid}"] = 1e3 * statistics.median(times) / batch
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="another checkout to compare with")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ours = measure(args.batch_size, args.repeats)
    if args.json:
        print(json.dumps(ours))
        return
    theirs = {}
    if args.baseline:
        env = {**os.environ, "PYTHONPATH": args.baseline}
        command = [sys.executable, __file__, "--json", "--batch-size", str(args.batch_size)]
        command += ["--repeats", str(args.repeats)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        theirs = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"ms per image (6 maps to {SIZE[1]}x{SIZE[0]}), batch {args.batch_size}, CPU, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for case, ms in ours.items():
        line = f"  {case:12s} {ms:8.2f}"
        if case in theirs:
            line += f"   baseline {theirs[case]:8.2f}   ratio {ms / theirs[case]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
