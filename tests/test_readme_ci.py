"""CI must run exactly the set-up and test commands README.md gives."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _blocks_after(text: str, heading: str) -> list[list[str]]:
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return [[line.strip() for line in block.splitlines() if line.strip()]
            for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_ci_runs_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.strip().startswith("#")]
    setup, tests = _blocks_after(readme, "Install"), _blocks_after(readme, "Tests")
    assert len(setup) == 1 and len(setup[0]) == 1 and len(tests) == 2 and all(len(b) == 1 for b in tests)
    commands = [c for c in ci if not c.startswith(("set ", "cd ", "export "))]
    # every command must stop the run when it fails (set -e ignores failures inside an && list)
    assert all(c.endswith(" || exit 1") for c in commands)
    assert [c.removesuffix(" || exit 1") for c in commands] == setup[0] + tests[0] + tests[1]
    # each environment is new: CI builds it, then installs into it
    assert setup[0][0].startswith("python -m venv .venv && . .venv/bin/activate && pip install")
    assert tests[1][0].startswith("python -m venv .venv-oldest && . .venv-oldest/bin/activate")


def test_the_oldest_constraints_pin_every_runtime_minimum():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "oldest.py")], capture_output=True, text=True,
                         check=True).stdout.split()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    plain = [d for d in deps if ";" not in d]
    assert len(out) == len(plain) and "torch==2.13.0" in out
    for d in plain:
        name, low = re.match(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,\s]*)", d).groups()
        assert f"{name}=={low}" in out or name == "torch", d
