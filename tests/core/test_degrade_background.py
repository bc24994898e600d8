import numpy as np
import pytest

from galviewer.core.measure import background
from galviewer.core.psf.degrade import add_noise, convolve, correlated_noise, degrade
from galviewer.core.psf.gaussian import DEFAULT_LQ_FWHM_PIX, fwhm_to_sigma, gaussian_psf, hst_fwhm_pixels
from galviewer.errors import ParameterError
from tests.helpers import galaxy


def test_psf_is_normalised_centred_and_has_the_requested_width():
    psf = gaussian_psf(4.0, 31)
    assert psf.sum() == pytest.approx(1.0)
    _, x = np.mgrid[:31, :31] - 15
    assert (psf * x).sum() == pytest.approx(0, abs=1e-12)
    # second moment of a pixel-integrated Gaussian = sigma^2 + 1/12
    assert np.sqrt((psf * x**2).sum() - 1 / 12) == pytest.approx(fwhm_to_sigma(4.0), rel=1e-3)
    assert DEFAULT_LQ_FWHM_PIX == pytest.approx(1.88)
    assert hst_fwhm_pixels(0.05) == pytest.approx(1.88)
    assert gaussian_psf().shape == (7, 7)
    with pytest.raises(ParameterError, match="size"):
        gaussian_psf(2.0, 6)
    with pytest.raises(ParameterError, match="fwhm"):
        gaussian_psf(-1.0)


def test_convolution_conserves_flux_and_blurs():
    img = galaxy((64, 64), 32, 32, flux=1000.0, r=1.0)
    out = convolve(img, gaussian_psf(3.0, 15))
    assert out.sum() == pytest.approx(1000.0, rel=1e-3)
    assert out.max() < 0.6 * img.max()
    big = convolve(img, gaussian_psf(3.0, 21))  # FFT path
    assert np.allclose(big, out, atol=1e-3 * img.max())


def test_white_noise_rms_and_determinism():
    a = add_noise(np.zeros((256, 256)), 0.05, np.random.default_rng(3))
    b = add_noise(np.zeros((256, 256)), 0.05, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert a.std() == pytest.approx(0.05, rel=0.02)


def test_correlated_noise_is_correlated_with_requested_rms():
    n = correlated_noise((128, 128), 0.02, np.random.default_rng(1))
    assert n.std() == pytest.approx(0.02, rel=1e-6)
    rho = np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1]
    assert rho > 0.1
    w = add_noise(np.zeros((128, 128)), 0.02, np.random.default_rng(1))
    assert abs(np.corrcoef(w[:, :-1].ravel(), w[:, 1:].ravel())[0, 1]) < 0.05
    assert np.array_equal(n, correlated_noise((128, 128), 0.02, np.random.default_rng(1)))


def test_degrade_pipeline():
    gt = galaxy((64, 64), 32, 32, flux=100.0, r=2.0)
    d = degrade(gt, noise_rms=0.01, rng=np.random.default_rng(0))
    assert d.lq.shape == gt.shape and d.psf.shape == (7, 7)
    assert (d.lq - convolve(gt, d.psf)).std() == pytest.approx(0.01, rel=0.05)
    c = degrade(gt, noise_rms=0.01, rng=np.random.default_rng(0), correlated=True)
    assert c.correlated
    with pytest.raises(ParameterError, match="rng"):
        degrade(gt, noise_rms=0.1)
    with pytest.raises(ParameterError, match="image"):
        degrade(np.zeros(5))


def test_background_recovers_level_and_rms_next_to_a_source():
    rng = np.random.default_rng(7)
    img = 10.0 + rng.normal(0, 2.0, (64, 64)) + galaxy((64, 64), 32, 32, flux=20000.0, r=3.0)
    b = background(img)
    assert b.level == pytest.approx(10.0, abs=0.3)
    assert b.rms == pytest.approx(2.0, rel=0.1)
    assert abs(b.mean - 10.0) > abs(b.level - 10.0)  # the mode beats the clipped mean
    # Source-dominated: 40 % of the pixels on a plateau; SExtractor then falls back to the median.
    crowded = 10 + rng.normal(0, 1.0, (64, 64))
    crowded[:, :26] += 5.0
    b = background(crowded)
    assert b.method == "median" and b.level == pytest.approx(b.median)


def test_background_errors():
    with pytest.raises(ParameterError, match="image"):
        background(np.full((5, 5), np.nan))
    with pytest.raises(ParameterError, match="mask"):
        background(np.zeros((5, 5)), mask=np.zeros((4, 4), bool))


def test_pixelated_gaussian_matches_galsim_off_centre():
    import galsim

    from galviewer.core.psf.gaussian import pixelated_gaussian

    for x, y in ((31.5, 31.5), (20.3, 40.7)):
        ref = galsim.Gaussian(fwhm=1.3, flux=1.0).drawImage(nx=64, ny=64, scale=1.0,
                                                             offset=(x - 31.5, y - 31.5)).array
        img = pixelated_gaussian((64, 64), x, y, 1.3)
        assert np.abs(img - ref).max() < 5e-5  # GalSim: 1.2e-5 here, peaks 0.22–0.32
        assert np.unravel_index(img.argmax(), img.shape) == np.unravel_index(ref.argmax(), ref.shape)
