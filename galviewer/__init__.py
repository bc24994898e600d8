"""galviewer: restore HST galaxy images with a Restormer, measure them honestly.

The public entry points are re-exported here lazily so that ``import galviewer``
stays light (no torch import until a model is used).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.5.0"

__all__ = ["Image", "Restoration", "Restorer", "Stamp", "__version__", "cutout", "open_image"]

_LAZY = {
    "open_image": "galviewer.core.io.fits",
    "Image": "galviewer.core.io.fits",
    "Stamp": "galviewer.core.io.stamps",
    "cutout": "galviewer.core.io.stamps",
    "Restorer": "galviewer.core.restore.engine",
    "Restoration": "galviewer.core.restore.engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'galviewer' has no attribute {name!r}")
