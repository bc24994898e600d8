"""Shared by the benchmark scripts: write a Markdown table and echo it."""

from __future__ import annotations

from pathlib import Path


def write_table(path: str | Path, lines: list[str]) -> None:
    """Write ``lines`` as a Markdown file (creating its folder) and print them."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
