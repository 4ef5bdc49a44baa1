"""`wsolbench bench` (placeholder until its issue lands)."""
from wsolbench.cli import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "bench", help="(not yet available)")
    parser.set_defaults(func=lambda args: print("not yet available") or 1)
