"""``galviewer-train`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from galviewer import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="galviewer-train",
        description="Build galviewer models: simulate training pairs with GalSim, train, evaluate. "
        "The sub-commands arrive with the trainer work; this version only reports its version.",
    )
    parser.add_argument("--version", action="version", version=f"galviewer-train {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    parser.print_help()
    return 0
