"""Issue 21: rooms a newcomer can hold — no module of galviewer/ or trainer/ over 500 lines, the main window an
assembly of controllers (≤ 400 lines), core split by concern, README short with its guide in docs/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_over_500_lines_and_the_window_only_assembles():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for pkg in ("galviewer", "trainer") for p in (ROOT / pkg).rglob("*.py")}
    assert {k: v for k, v in sizes.items() if v > 500} == {}
    assert sizes["galviewer/qt/main_window.py"] <= 400
    # core is subpackages by concern, not a flat folder of modules
    core = ROOT / "galviewer" / "core"
    assert sorted(p.name for p in core.iterdir() if p.is_dir() and p.name != "__pycache__") == [
        "io", "measure", "nn", "psf", "restore", "sim"]
    assert [p.name for p in core.glob("*.py")] == ["__init__.py"]


def test_readme_is_short_and_the_guide_lives_in_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in ("viewer", "cli", "python", "measurements", "models", "benchmarks", "training", "limits",
                 "architecture"):
        assert (ROOT / "docs" / "guide" / f"{page}.md").is_file(), page
        assert f"guide/{page}" in (ROOT / "docs" / "index.md").read_text()
