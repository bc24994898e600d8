"""Issue 23 (1): stars by default needs a decision that tells unresolved from resolved — spread_model."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galviewer.core.measure.spread import POINT_SPREAD, spread_model
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.core.restore.point_source import place
from galviewer.errors import ParameterError

FWHM = 1.88
KERNEL = gaussian_psf(FWHM, 15)


def _measure(profile, snr: float, dx: float, dy: float, seed: int):
    # offset= from the true centre (0-based 31.5 of 64 px) means the same in every GalSim; center= on an
    # even-sided image's .array does not (2.5.3 and 2.8.5 put it 1 px apart: the oldest-versions CI found it)
    img = galsim.Convolve(profile, galsim.Gaussian(fwhm=FWHM)).drawImage(
        nx=64, ny=64, scale=1.0, offset=(dx, dy)).array
    rms = img.max() / snr
    lq = img + np.random.default_rng(seed).normal(0, rms, img.shape)
    x, y = 31.5 + dx, 31.5 + dy
    return spread_model(lq, place(KERNEL, x, y, lq.shape), rms, fwhm=FWHM, center=(x, y))


@settings(max_examples=12, deadline=None, derandomize=True)
@given(snr=st.floats(20, 3000), dx=st.floats(-0.5, 0.5), dy=st.floats(-0.5, 0.5))
def test_stars_are_unresolved_at_every_brightness(snr, dx, dy):
    s = _measure(galsim.DeltaFunction(), snr, dx, dy, seed=int(snr))
    assert s.point and abs(s.value) < POINT_SPREAD, s.describe()


@settings(max_examples=12, deadline=None, derandomize=True)
@given(snr=st.floats(20, 3000), hlr=st.floats(0.75, 3.0), n=st.sampled_from([0.6, 1.0, 1.5, 2.5, 4.0]),
       q=st.floats(0.4, 1.0))
def test_galaxies_the_app_calls_resolved_are_resolved(snr, hlr, n, q):
    """Down to the app's own limit (LQ R50 ≥ 0.75 px, ``compare.POINT_R50_PIX``): a galaxy of R50 0.5 px at S/N 23
    measures 0.0029 ± 0.0008, which no S/N-20 measurement tells from a star."""
    s = _measure(galsim.Sersic(n=n, half_light_radius=hlr).shear(q=q, beta=0.3 * galsim.radians), snr, 0.2, -0.1,
                 seed=int(snr))
    assert not s.point and s.value > 0, s.describe()


def test_a_hot_pixel_is_no_star_and_bad_input_is_named():
    lq = np.random.default_rng(0).normal(0, 1.0, (32, 32))
    lq[16, 16] += 500.0
    s = spread_model(lq, place(KERNEL, 16, 16, lq.shape), 1.0, fwhm=FWHM, center=(16, 16))
    assert s.value < -POINT_SPREAD and not s.point
    with pytest.raises(ParameterError, match="psf"):
        spread_model(lq, np.ones((8, 8)), 1.0, fwhm=FWHM, center=(16, 16))
    with pytest.raises(ParameterError, match="fwhm"):
        spread_model(lq, lq, 1.0, fwhm=0.0, center=(16, 16))
