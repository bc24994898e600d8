"""Print pip constraints that pin every runtime dependency of pyproject.toml to the oldest version it allows.

    python .ci/oldest.py > oldest.txt && pip install -c oldest.txt torch==2.13.0 -e ".[dev]"

The astropy-affiliated practice (the ``minimum_dependencies`` tool): ``name>=X`` becomes ``name==X``, so a test run
in that environment proves the declared minimums.  Exceptions, said here so nobody has to guess: torch stays at
the 2.13.0 CPU wheel the README installs (older torch releases are multi-GB CUDA downloads on a CPU-only runner),
and dependencies with an environment marker (backports such as tomli) are left out — this runs in a bare venv,
before ``packaging`` is there to evaluate markers.  Development tools (the ``dev`` extra) are not pinned.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

KEEP = {"torch": "2.13.0"}


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req, _, marker = spec.partition(";")
        if marker.strip():
            continue
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
        name, rest = m.group(1), m.group(2)
        low = re.search(r">=\s*([0-9][^,\s]*)", rest)
        if name.lower() in KEEP:
            print(f"{name}=={KEEP[name.lower()]}")
        elif low:
            print(f"{name}=={low.group(1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
