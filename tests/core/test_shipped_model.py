"""The shipped default model: it loads from the package, says where it came from, and really restores."""

import galsim
import numpy as np
import pytest

from galviewer.core.measure import compare, psnr
from galviewer.core.nn.resources import available_models, default_model_name
from galviewer.core.psf.degrade import degrade
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.core.restore.engine import Restorer


@pytest.fixture(scope="module")
def restorer():
    return Restorer.from_pretrained(device="cpu")


def _minmax(x):
    return (x - x.min()) / np.ptp(x)


def test_default_model_is_shipped_with_provenance(restorer):
    assert default_model_name() in available_models()
    meta = restorer.metadata
    assert meta.iterations > 0 and meta.training_data
    assert meta.metrics["table1"]["RS"]["psnr"] > meta.metrics["table1"]["LQ"]["psnr"]
    assert meta.extra["gt_psf_fwhm_pix"] == pytest.approx(1.3)


def test_a_blurred_galaxy_gets_sharper_and_closer_to_the_truth(restorer):
    gal = galsim.Sersic(n=1.0, half_light_radius=3.0, flux=5000.0).shear(q=0.6, beta=0.3 * galsim.radians)
    gt = galsim.Convolve(gal, galsim.Gaussian(fwhm=1.3)).drawImage(nx=64, ny=64, scale=1.0).array.astype(float)
    rng = np.random.default_rng(11)
    d = degrade(gt, fwhm=1.88, noise_rms=0.03 * gt.max(), rng=rng)
    r = restorer.restore(d.lq + 100.0, uncertainty=False)
    gain = psnr(_minmax(gt), r.normalized) - psnr(_minmax(gt), _minmax(d.lq))
    assert gain > GAIN_DB
    m = compare(d.lq + 100.0, r.data, r.psf, err=0.03 * gt.max(), rs_psf=gaussian_psf(1.3), gt=gt + 100.0)
    fwhm = {k: m.phot.images[k].fwhm for k in ("LQ", "RS", "GT")}
    assert fwhm["RS"] < (1 - SHARPER) * fwhm["LQ"]
    assert abs(m.flux_conservation - 1) < 0.05
    assert abs(m.fits["RS"].r50 - 3.0) < abs(m.fits["LQ"].r50 - 3.0) + 0.3


GAIN_DB = 8.0
SHARPER = 0.10
