"""`wsolbench bench`: the main job (train, post-process, score, leaderboard)."""

from __future__ import annotations

from wsolbench.cli import add_command


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "bench",
        help="train every method of a suite, apply each post-processor, score and write a leaderboard",
        description="Run a benchmark suite: train each method (cached by configuration hash and "
        "resumed after an interruption), produce maps plain and + SCG, score them under every "
        "protocol (spa, wsolevaluation, peak) and write leaderboards/<suite>/. A second run with "
        "the same suite only re-renders. Under `torchrun --nproc_per_node=N -m wsolbench bench` "
        "training uses DistributedDataParallel and evaluation shards merge exactly.",
    )
    from wsolbench.suite import BUILTIN_SUITES

    parser.add_argument(
        "--suite",
        metavar="NAME",
        default="synthetic-default",
        help=f"a built-in suite ({', '.join(BUILTIN_SUITES)}: `wsolbench list suites` says "
        "what each reproduces and costs) or the path of a suite TOML file (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a suite value, e.g. --set train.epochs=2 --set dataset.image_root=/data/CUB "
        "(repeatable; TOML values)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        metavar="LABEL,...",
        help="run only these of the suite's methods (comma-separated labels); the others stay in "
        "the leaderboard from their cached scores",
    )
    parser.add_argument(
        "--checkpoint",
        dest="checkpoints",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="score this checkpoint (a `wsolbench checkpoint import`ed file of released weights) "
        "as the suite's method LABEL instead of training it (repeatable; the same as --set "
        "methods.LABEL.checkpoint=PATH)",
    )
    parser.add_argument(
        "--runs-dir", default="runs", help="checkpoints and cached scores (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default="leaderboards", help="leaderboards root (default: %(default)s)"
    )
    from wsolbench.engine.device import DEVICE_OPTION
    from wsolbench.options import flag_type

    parser.add_argument(
        "--device",
        default="auto",
        type=flag_type(DEVICE_OPTION),
        help="auto, cpu, cuda or cuda:N (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print every leaderboard table at the end (default: the headline table and "
        "where the full report is)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved settings, which models are cached and the estimated time on "
        "this machine (one training and one evaluation batch measured per method); write "
        "nothing",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from wsolbench.bench import run_bench
    from wsolbench.errors import WsolbenchError
    from wsolbench.suite import load_suite

    suite = load_suite(args.suite, args.overrides)
    if args.checkpoints:  # one more load: each becomes the override it stands for
        suite = load_suite(args.suite, [*args.overrides, *checkpoint_overrides(args, suite)])
    wanted = None
    if args.methods is not None:
        wanted = [label.strip() for label in args.methods.split(",") if label.strip()]
        if not wanted:
            raise WsolbenchError(
                f"--methods {args.methods!r} selects no method (give comma-separated labels)"
            )
        known = {spec.label for spec in suite.methods} | {c.label for c in suite.classifiers}
        unknown = [label for label in wanted if label not in known]
        if unknown:
            raise WsolbenchError(
                f"--methods: {', '.join(unknown)} not in suite {suite.name} (has: {', '.join(sorted(known))})"
            )
    if args.dry_run:
        from wsolbench.dry_run import dry_run

        dry_run(suite, runs_dir=args.runs_dir, device=args.device, only=wanted)
        return 0
    from wsolbench.engine import distributed

    run_bench(
        suite,
        runs_dir=args.runs_dir,
        out_dir=args.out,
        device=args.device,
        progress=not args.no_progress,
        only=wanted,
        verbose=args.verbose,
    )
    distributed.shutdown()  # under torchrun: leave the process group while Python is alive
    return 0


def checkpoint_overrides(args, suite) -> list[str]:
    """``--checkpoint LABEL=PATH`` as ``methods.LABEL.checkpoint=PATH`` (the suite schema checks
    it as it checks the key in a suite file); LABEL must be one of the suite's methods."""
    import json

    from wsolbench.errors import WsolbenchError

    labels = [spec.label for spec in suite.methods]
    out = []
    for given in args.checkpoints:
        label, sep, path = given.partition("=")
        if not sep or not label or not path:
            raise WsolbenchError(f"--checkpoint {given}: expected LABEL=PATH")
        if label not in labels:
            raise WsolbenchError(
                f"--checkpoint {given}: suite {suite.name} has no method {label!r} "
                f"(its methods: {', '.join(labels) or 'none'})"
            )
        out.append(f"methods.{label}.checkpoint={json.dumps(path)}")
    return out
