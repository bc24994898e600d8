import galsim
import numpy as np
import pytest
from photutils.aperture import aperture_photometry

from galviewer.core.measure import compare, fit_sersic, photometry
from galviewer.core.measure.background import background
from galviewer.core.psf.degrade import convolve, degrade
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.errors import ParameterError

GT_PSF = galsim.Gaussian(fwhm=1.3)


def _galaxy(flux=1000.0, n=1.0, r50=4.0, q=0.6, shift=(0.0, 0.0), size=64):
    gal = galsim.Sersic(n=n, half_light_radius=r50, flux=flux).shear(q=q, beta=0.4 * galsim.radians).shift(*shift)
    return galsim.Convolve(gal, GT_PSF).drawImage(nx=size, ny=size, scale=1.0).array.astype(np.float64)


def _pair(noise=0.2, seed=3, bkg=5.0):
    gt = _galaxy()
    d = degrade(gt, noise_rms=noise, rng=np.random.default_rng(seed))
    return gt + bkg, d.lq + bkg, d.psf


def test_fluxes_match_photutils_on_the_same_apertures():
    gt, lq, _ = _pair()
    p = photometry(lq, {"GT": gt})
    assert p.ok
    for name, img in (("LQ", lq), ("GT", gt)):
        sub = img - background(img).level
        direct = float(aperture_photometry(sub, p.kron_aperture, method="exact")["aperture_sum"][0])
        assert p.images[name].kron_flux == pytest.approx(direct, rel=1e-6)
        assert p.images[name].iso_flux == pytest.approx(sub[p.segment].sum(), rel=1e-9)
        assert np.allclose(np.sort(p.pixels[name]), np.sort(sub[p.kron_mask]))
    # A Kron ellipse of 2.5 Kron radii holds > 90 % of an exponential's light; the segment less.
    assert 900 < p.images["GT"].kron_flux < 1000
    assert p.images["GT"].iso_flux < p.images["GT"].kron_flux
    assert p.images["LQ"].kron_flux_err > 0
    # The same apertures measure GT and LQ alike: within the LQ noise.
    assert abs(p.images["LQ"].kron_flux - p.images["GT"].kron_flux) < 4 * p.images["LQ"].kron_flux_err
    # Blurring broadens the profile: FWHM of LQ > GT, and the growth-curve R50 is close to the truth (4 px ⊗ PSF).
    assert p.images["LQ"].fwhm > p.images["GT"].fwhm
    assert 3.8 < p.images["GT"].r50_cog < 4.6


def test_pure_background_is_flagged_not_raised():
    rng = np.random.default_rng(0)
    for seed in range(5):
        p = photometry(np.random.default_rng(seed).normal(10, 1, (64, 64)))
        assert not p.ok and "no source" in p.reason
    m = compare(rng.normal(0, 1, (64, 64)), rng.normal(0, 1, (64, 64)), gaussian_psf(1.88))
    assert not m.phot.ok
    assert "photometry" in m.as_text()
    assert m.to_dict()["photometry_ok"] is False


def test_compare_truth_explains_lq_and_a_wrong_restoration_does_not():
    gt, lq, psf = _pair(noise=0.2)
    good = compare(lq, gt, psf, err=0.2, rs_psf=gaussian_psf(1.3))
    assert good.flux_conservation == pytest.approx(1.0, abs=0.02)
    assert good.residual_chi2 == pytest.approx(1.0, abs=0.1)
    assert good.fits["RS"].n == pytest.approx(1.0, rel=0.05) and good.fits["RS"].r50 == pytest.approx(4.0, rel=0.03)
    shifted = _galaxy(shift=(3.0, 0.0)) + 5.0
    bad = compare(lq, shifted, psf, err=0.2)
    assert bad.residual_chi2 > 10
    faint = compare(lq, 0.7 * (gt - 5.0) + 5.0, psf, err=0.2)
    assert faint.flux_conservation == pytest.approx(0.7, abs=0.03)
    text = good.as_text()
    assert "Sérsic n" in text and "Kron flux" in text and "flux conservation" in text
    d = good.to_dict()
    assert set(d["LQ"]) >= {"n", "n_err", "r50", "kron_flux", "iso_flux", "fwhm"}


def test_lq_only_table():
    _, lq, psf = _pair()
    m = compare(lq, None, psf)
    assert list(m.fits) == ["LQ"]
    assert "flux conservation" not in m.as_text()


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.full((32, 32), np.nan), "finite"),
        (np.ones((32, 32)), "constant"),
        (np.ones((1, 40)), "8×8"),
    ],
)
def test_bad_images_raise_named_errors(image, match):
    for call in (lambda: photometry(image), lambda: fit_sersic(image), lambda: compare(image, image, gaussian_psf())):
        with pytest.raises(ParameterError, match=match):
            call()


def test_mismatched_shapes_and_psf():
    _, lq, psf = _pair()
    with pytest.raises(ParameterError, match="rs"):
        compare(lq, lq[:40, :40], psf)
    with pytest.raises(ParameterError, match="psf"):
        compare(lq, lq, np.ones((4, 4)))
    with pytest.raises(ParameterError, match="psf"):
        compare(lq[:8, :8], lq[:8, :8], gaussian_psf(1.88, 9))
    with pytest.raises(ParameterError, match="GT"):
        photometry(lq, {"GT": lq[:10, :10]})


def test_residual_uses_the_psf():
    gt, lq, psf = _pair(noise=0.05)
    assert np.std(lq - convolve(gt, psf)) == pytest.approx(0.05, rel=0.1)


def test_a_star_is_flagged_point_like_and_a_resolved_galaxy_is_not():
    from galviewer.core.measure.compare import compare
    from galviewer.core.measure.sersic import render_sersic
    from galviewer.core.psf.degrade import convolve
    from galviewer.core.psf.gaussian import gaussian_psf

    rng = np.random.default_rng(3)
    psf = gaussian_psf(1.88, 7)
    star = np.zeros((64, 64))
    star[32, 32] = 5000.0
    gal = render_sersic((64, 64), 32.0, 32.0, 40.0, 5.0, 1.0, 0.1, 0.0)
    for img, expected in ((star, True), (gal, False)):
        lq = convolve(img, psf) + rng.normal(0.0, 1.0, (64, 64))
        assert compare(lq, None, psf, err=1.0).point_like is expected


def test_apertures_belong_to_the_source_at_the_centre_not_to_its_blend():
    """Issue 12 (3): at the cD's neighbour of Abell 2744 the Kron ellipse was centred 7 px off, a = 46 px."""
    from pathlib import Path

    from galviewer import cutout, open_image
    from galviewer.core.measure.compare import compare
    from galviewer.core.psf.instrument import instrument_psf

    path = Path(__file__).resolve().parents[2] / "data" / "realdata" / "wfc3ir_cd_neighbour.fits"
    with open_image(path) as im:
        st = cutout(im, 46.7, 47.9, 64)
        psf = instrument_psf(im.meta).fitting_kernel(64)
    k = compare(st.lq, None, psf, err=st.err, mask=st.bad).to_dict()["kron_ellipse"]
    cx, cy = st.center_in_stamp
    assert abs(k["x"] - cx) < 1.5 and abs(k["y"] - cy) < 1.5 and k["a"] < 25


def test_empty_sky_at_the_centre_is_not_measured_as_a_neighbour():
    import numpy as np

    from galviewer.core.measure.photometry import photometry
    from tests.helpers import galaxy

    rng = np.random.default_rng(5)
    img = 10.0 + galaxy((64, 64), 50.0, 50.0, flux=4000.0, r=2.0) + rng.normal(0, 1.0, (64, 64))
    p = photometry(img)
    assert not p.ok and "no source at the stamp centre" in p.reason
    near = 10.0 + galaxy((64, 64), 33.5, 32.0, flux=4000.0, r=2.0) + rng.normal(0, 1.0, (64, 64))
    assert photometry(near).ok
