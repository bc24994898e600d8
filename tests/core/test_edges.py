"""Issue 23 (5): a source at an image edge or corner.  The stamp reaching past the image is measured on the
image's own pixels only (the part beyond is no data: blank in the panels and the figure), so the target's flux is
conserved and nothing is invented, wherever along the edge it lies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galviewer.core.psf.degrade import convolve
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.core.restore.pipeline import Pipeline
from tests.helpers import galaxy

N = 160


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.default(device="cpu", uncertainty=False)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(d=st.floats(4.0, 24.0), corner=st.booleans(), along=st.floats(40.0, 120.0), seed=st.integers(0, 1000))
def test_a_galaxy_at_an_edge_or_corner_keeps_its_flux_and_invents_nothing(pipe, d, corner, along, seed):
    x, y = d, (d if corner else along)
    img = convolve(galaxy((N, N), x, y, flux=3000.0, r=2.5, q=0.7), gaussian_psf(1.88, 15))
    lq = (img + np.random.default_rng(seed).normal(0, 1.0, img.shape)).astype(np.float32)
    r = pipe.run(lq, x, y)
    v = r.meta["verdict"]
    assert r.stamp.padded.any()
    assert abs(v.checks["flux"].value - 1) <= 0.05, v.summary()
    assert v.checks["new_sources"].value == 0 and v.checks["border"].ok, v.summary()


def test_the_part_beyond_the_image_is_drawn_blank(pipe, tmp_path):
    from galviewer.core.restore.figure import restoration_figure

    img = convolve(galaxy((N, N), 6.0, 80.0, flux=3000.0, r=2.5), gaussian_psf(1.88, 15))
    lq = (img + np.random.default_rng(1).normal(0, 1.0, img.shape)).astype(np.float32)
    r = pipe.run(lq, 6.0, 80.0)
    assert r.stamp.padded[:, :20].all() and np.isfinite(r.data).all()  # the numbers stay finite
    out = restoration_figure(tmp_path / "edge.png", r)
    assert out.stat().st_size > 0
