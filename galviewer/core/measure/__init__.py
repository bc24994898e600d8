"""Measurement maths (numpy/scipy/astropy/photutils only; never Qt)."""

from galviewer.core.measure.background import Background, background
from galviewer.core.measure.metrics import psnr, ssim

__all__ = ["Background", "background", "psnr", "ssim"]
