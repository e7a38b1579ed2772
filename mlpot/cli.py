"""``mlpot`` command line: one sub-command per job.

Each job's module owns its arguments through a ``register(subparsers)``
function that adds its parser and sets ``func`` to the handler.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from md import cli as md_cli
    from mlpot import train_cli

    parser = argparse.ArgumentParser(prog="mlpot", description="Machine-learned interatomic potentials in JAX")
    sub = parser.add_subparsers(dest="command", required=True)
    train_cli.register(sub)
    md_cli.register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        # User errors (bad file, bad option, bad structure): one clear line, no traceback.
        print(f"mlpot {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
