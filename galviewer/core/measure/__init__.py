"""Measurement maths (numpy/scipy/astropy/photutils only; never Qt)."""

from galviewer.core.measure.background import Background, background
from galviewer.core.measure.compare import Measurements, compare
from galviewer.core.measure.metrics import psnr, ssim
from galviewer.core.measure.photometry import ImagePhotometry, Photometry, photometry
from galviewer.core.measure.sersic import SersicFit, fit_sersic

__all__ = [
    "Background",
    "ImagePhotometry",
    "Measurements",
    "Photometry",
    "SersicFit",
    "background",
    "compare",
    "fit_sersic",
    "photometry",
    "psnr",
    "ssim",
]
