"""galviewer: restore HST galaxy images with a Restormer, measure them honestly.

``galviewer.restore_at(image, x, y)`` restores a source exactly as a click in the viewer does (the one
:class:`~galviewer.core.restore.pipeline.Pipeline` every path runs).  The public entry points are re-exported
here lazily so that ``import galviewer``
stays light (no torch import until a model is used).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.7.0"

__all__ = ["Image", "Pipeline", "PipelineConfig", "Restoration", "Restorer", "Stamp", "__version__", "cutout",
           "open_image", "restore_at"]

_LAZY = {
    "open_image": "galviewer.core.io.fits",
    "Image": "galviewer.core.io.fits",
    "Stamp": "galviewer.core.io.stamps",
    "cutout": "galviewer.core.io.stamps",
    "Restorer": "galviewer.core.restore.engine",
    "Restoration": "galviewer.core.restore.result",
    "Pipeline": "galviewer.core.restore.pipeline",
    "PipelineConfig": "galviewer.core.restore.pipeline",
    "restore_at": "galviewer.core.restore.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'galviewer' has no attribute {name!r}")
