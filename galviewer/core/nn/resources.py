"""Locating data shipped in ``resources/`` (installed as ``galviewer.resources``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["available_models", "default_model_name", "models_dir", "resource_path"]


def resource_path(*parts: str) -> Path:
    """Filesystem path of a shipped resource (it may not exist)."""
    root = resources.files("galviewer.resources")
    return Path(str(root.joinpath(*parts)))


def models_dir() -> Path:
    """Folder holding the shipped model checkpoints."""
    return resource_path("models")


def available_models() -> list[str]:
    """Names of the shipped models (``NAME.safetensors`` files), sorted."""
    folder = models_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.safetensors"))


def default_model_name() -> str | None:
    """The default shipped model: the name in ``models/default.txt``, else the only model, else None."""
    names = available_models()
    marker = models_dir() / "default.txt"
    if marker.is_file():
        name = marker.read_text().strip()
        if name in names:
            return name
    return names[0] if len(names) == 1 else None
