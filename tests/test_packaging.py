"""Packaging and architecture rules: resources ship in the wheel; core and trainer never import Qt."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "pyqtgraph", "qasync", "PyQt5", "PyQt6", "galviewer.qt")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["galviewer/core", "trainer"])
def test_model_packages_never_import_qt(package):
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        for name in _imports(path):
            if name.startswith(QT_MODULES):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders


def test_core_import_loads_no_qt():
    code = ("import sys, galviewer.core.restore.engine, galviewer.core.io.fits, galviewer.cli; "
            "print([m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'qasync')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_resources_found_from_this_install():
    from galviewer.core.nn.resources import models_dir, resource_path

    assert (models_dir() / "README.md").is_file()
    assert resource_path("models").samefile(ROOT / "resources" / "models")


@pytest.mark.slow
def test_wheel_contains_resources_and_trainer(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("galviewer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "galviewer/resources/__init__.py" in names
    assert "galviewer/resources/models/README.md" in names
    for f in (ROOT / "resources").rglob("*"):
        if f.is_file() and f.suffix in (".safetensors", ".json", ".fits", ".md"):
            assert f"galviewer/resources/{f.relative_to(ROOT / 'resources').as_posix()}" in names
    assert "trainer/cli.py" in names and "galviewer/core/restore/engine.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert "galviewer = galviewer.cli:main" in text and "galviewer-train = trainer.cli:main" in text
    # The wheel finds its resources when installed elsewhere.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = "from galviewer.core.nn.resources import models_dir; print(models_dir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(target / "galviewer" / "resources" / "models")
