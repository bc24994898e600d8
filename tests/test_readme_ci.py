"""CI must run exactly the set-up and test commands README.md gives."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _block_after(text: str, heading: str) -> list[str]:
    section = text.split(f"## {heading}", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.strip().startswith("#")]
    setup, tests = _block_after(readme, "Install"), _block_after(readme, "Tests")
    assert len(setup) == 1 and len(tests) == 1
    commands = [c for c in ci if not c.startswith(("set ", "cd ", "export "))]
    assert commands == setup + tests
