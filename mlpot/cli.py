"""``mlpot`` command line: one sub-command per job.

Each job's module owns its arguments through a ``register(subparsers)``
function that adds its parser and sets ``func`` to the handler.
"""

from __future__ import annotations

import argparse
import sys
import warnings


def build_parser() -> argparse.ArgumentParser:
    from md import cli as md_cli
    from mlpot import deviation, train_cli

    parser = argparse.ArgumentParser(prog="mlpot", description="Machine-learned interatomic potentials in JAX")
    sub = parser.add_subparsers(dest="command", required=True)
    train_cli.register(sub)
    md_cli.register(sub)
    deviation.register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    formatwarning = warnings.formatwarning
    warnings.formatwarning = _one_line(args.command, formatwarning)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:
        # User errors (bad file, bad option, bad structure, a path that cannot be written): one clear
        # line, no traceback; an OSError's message names the path.
        print(f"mlpot {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C is a user's choice, not a crash: say what is kept and how to go on; 130 = 128 + SIGINT.
        print(f"mlpot {args.command}: interrupted{_after_interrupt(args)}", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning


def _one_line(command: str, default):
    """A user warning as the line a user reads ("mlpot eval: warning: ..."), not Python's two lines of
    source file and code; other warnings (deprecations for developers) keep Python's form."""

    def format_warning(message, category, filename, lineno, line=None):
        if issubclass(category, UserWarning):
            return f"mlpot {command}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    return format_warning


def _after_interrupt(args) -> str:
    """What a run stopped by Ctrl-C leaves usable (checkpoints and restart files are replaced whole)."""
    if args.command == "train":
        return "; checkpoints written so far are intact — rerun with --resume to continue from the last one (if any)"
    if args.command == "md" and args.restart:
        return f"; rerun the same command to continue from the last write of {args.restart}"
    if args.command == "md":
        return (
            "; frames and log lines written so far are kept; without --restart FILE a rerun starts over (--overwrite)"
        )
    return ""


if __name__ == "__main__":
    sys.exit(main())
