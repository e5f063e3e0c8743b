"""``ledom-reason`` command line.

Each sub-command lives in its own module under ``ledom_reason.cli`` and exposes
``register(subparsers)``, which adds a parser and sets ``func=run``. Modules must import heavy
libraries (torch, fastapi…) inside ``run``, so that ``ledom-reason --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ledom_reason._version import __version__

# Order = order in --help.
COMMAND_MODULES = [
    "demo",
    "score",
    "generate",
    "eval",
    "discrimination",
    "calibrate",
    "serve",
    "train",
    "quality",
    "inspect",
]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class NoAbbrevParser(argparse.ArgumentParser):
    """``ArgumentParser`` that refuses prefixes of options (``--max-step`` for ``--max-steps``): a typo
    must be an error, never a silently different option. Sub-command parsers inherit the class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def make_parser() -> argparse.ArgumentParser:
    parser = NoAbbrevParser(
        prog="ledom-reason",
        description="Reverse-language-model (LEDOM) verification of chain-of-thought.",
    )
    parser.add_argument("--version", action="version", version=f"ledom-reason {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # parser_class: NoAbbrevParser
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"ledom_reason.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"ledom_reason.cli.{name}":
                continue  # command not part of this build
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Library loading bars ("Loading weights…") are noise on a CLI; our own bars stay on.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, TypeError, FileNotFoundError, ImportError, FloatingPointError) as e:
        print(f"ledom-reason {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
