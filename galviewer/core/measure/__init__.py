"""Measurement maths (numpy/scipy/astropy/photutils only; never Qt)."""

from galviewer.core.measure.background import Background, background

__all__ = ["Background", "background"]
