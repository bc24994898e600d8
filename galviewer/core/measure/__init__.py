"""Measurement maths (numpy/scipy/astropy/photutils only; never Qt)."""

from galviewer.core.measure.background import Background, background
from galviewer.core.measure.metrics import psnr, ssim
from galviewer.core.measure.sersic import SersicFit, fit_sersic

__all__ = ["Background", "SersicFit", "background", "fit_sersic", "psnr", "ssim"]
