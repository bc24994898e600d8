"""Point-source mode (issue 11): a star is PSF-fitted and restored as the model's target PSF."""

import numpy as np
import pytest

from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.core.restore.point_source import fit_point_source, place
from galviewer.errors import ParameterError


def _star(x, y, flux=5000.0, sky=20.0, noise=1.0, seed=0, fwhm=2.5):
    rng = np.random.default_rng(seed)
    psf = gaussian_psf(fwhm, 15)
    img = sky + flux * place(psf, x, y, (64, 64)) + rng.normal(0, noise, (64, 64))
    return img, psf


def test_the_fit_recovers_flux_position_and_sky_of_a_star():
    img, psf = _star(32.37, 30.81)
    s = fit_point_source(img, psf, (32.0, 31.0), fwhm=2.5)
    assert s.flux == pytest.approx(5000.0, rel=0.01) and s.sky == pytest.approx(20.0, abs=0.1)
    assert abs(s.x - 32.37) < 0.03 and abs(s.y - 30.81) < 0.03 and s.explained > 0.99
    assert s.model.sum() == pytest.approx(s.flux, rel=1e-3)  # F·P, no sky
    # a masked (bad) pixel on the core does not bias it
    img[31, 32] = 1e6
    mask = np.zeros(img.shape, bool)
    mask[31, 32] = True
    assert fit_point_source(img, psf, (32.0, 31.0), fwhm=2.5, mask=mask).flux == pytest.approx(5000.0, rel=0.01)


def test_no_star_near_the_centre_is_refused_by_name():
    img, psf = _star(50.0, 12.0)  # 25 px away from the centre
    with pytest.raises(ParameterError) as e:
        fit_point_source(img, psf, (32.0, 32.0), fwhm=2.5)
    assert e.value.name == "point_source" and "no star within 2 px" in e.value.reason
    # nor is a noise fluctuation a star: pure noise gives a positive "flux" at some shift, far below S/N 5
    rng = np.random.default_rng(3)
    refused = 0
    for _ in range(20):
        with pytest.raises(ParameterError) as e:
            fit_point_source(rng.normal(20.0, 1.0, (64, 64)), gaussian_psf(2.5, 15), (32.0, 32.0), fwhm=2.5)
        refused += "no star within 2 px" in e.value.reason
    assert refused == 20
    faint, psf = _star(32.0, 32.0, flux=60.0)  # S/N ~ 13 with unit noise over a 2.5-px PSF: kept
    assert fit_point_source(faint, psf, (32.0, 32.0), fwhm=2.5).flux == pytest.approx(60.0, rel=0.15)


def test_restorer_adds_the_star_back_at_the_target_psf(tiny_ckpt):
    from galviewer import Restorer

    # a bare array is fitted with the model's LQ PSF (FWHM 1.884 px); peak S/N ~ 16,000: far outside any training
    img, _ = _star(32.2, 31.7, flux=2e5, noise=0.5, fwhm=1.884)
    with pytest.raises(ParameterError) as e:  # a model that does not say what a restored star looks like
        Restorer.from_file(tiny_ckpt, "cpu", uncertainty=False).restore(img, point_source=True)
    assert e.value.name == "point_source" and "target (GT) PSF" in e.value.reason
    r = Restorer.from_pretrained(None, "cpu", uncertainty=False)
    star = r.restore(img.astype(np.float32), point_source=True)
    meta = star.meta["point_source"]
    assert meta["flux"] == pytest.approx(2e5, rel=0.01) and abs(meta["x"] - 32.2) < 0.05
    # the restored star is the target PSF (GT FWHM 1.3 px) at the fitted flux: its peak is 1.75× the input's
    # (FWHM 1.88 → 1.3 px), and the stamp keeps the flux
    sky = meta["sky"]
    assert sky == pytest.approx(20.0, abs=0.1) and star.data.max() > 1.6 * (img.max() - sky)
    assert float(np.sum(star.data - sky)) == pytest.approx(2e5, rel=0.02)
    from galviewer.core.restore.result import steps_text

    assert steps_text(star.meta).startswith("point source: flux 2e+05 PSF-fitted at (32.2")
    plain = r.restore(img.astype(np.float32), point_source=False)
    assert plain.meta["point_source"] is None and plain.meta["point_source_decision"]["mode"] == "off"
    # by default (auto) this unresolved source is restored as a star, and the header line says why
    auto = r.restore(img.astype(np.float32))
    assert auto.meta["point_source"] is not None and auto.meta["point_source_decision"]["point"]
    assert steps_text(auto.meta).startswith("point source (unresolved: spread_model")
