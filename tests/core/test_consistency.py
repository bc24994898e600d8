"""Issue 11 (5): the data-consistency fusion explains the data to the noise and keeps the network elsewhere."""

import numpy as np
import pytest

from galviewer.core.consistency import fuse
from galviewer.core.degrade import convolve
from galviewer.core.psf import gaussian_psf
from galviewer.errors import ParameterError


def _scene(seed=0, noise=5.0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    truth = 50.0 + 1000.0 * np.exp(-((xx - 32) ** 2 + (yy - 30) ** 2) / 2.0)
    psf = gaussian_psf(1.88, 7)
    lq = convolve(truth, psf) + rng.normal(0.0, noise, truth.shape)
    return truth, psf, lq


def test_a_restoration_that_lost_flux_and_has_a_frame_is_pulled_back_to_the_data():
    truth, psf, lq = _scene()
    net = 50.0 + 0.6 * (truth - 50.0)
    net[:3, :] -= 30.0  # a dark frame along one edge
    r = fuse(lq, net, psf, 5.0)
    assert r.chi2_before > 5 and r.chi2_after == pytest.approx(1.0, abs=0.02)
    flux = float((truth - 50).sum())
    assert abs(float((r.image - 50).sum()) - flux) < 0.5 * abs(float((net - 50).sum()) - flux)
    assert abs(r.image[1].mean() - 50.0) < 0.2 * abs(net[1].mean() - 50.0)  # the frame is mostly gone
    assert np.isfinite(r.mu) and 0 < r.changed_fraction < 1


def test_a_restoration_that_explains_the_data_is_left_unchanged():
    truth, psf, lq = _scene(1)
    r = fuse(lq, truth, psf, 5.0)
    assert r.chi2_before <= 1.1
    if r.chi2_before <= 1.0:
        assert r.mu == np.inf and np.array_equal(r.image, truth.astype(np.float32))
    r2 = fuse(lq, truth, psf, 5.0, target=2.0)
    assert r2.mu == np.inf and r2.changed_fraction == 0


def test_where_the_psf_kills_the_signal_the_network_is_kept():
    truth, psf, lq = _scene(2)
    # the network adds detail at the Nyquist frequency, which this PSF passes at 1e-3 of its power:
    # the data cannot confirm or refute it, so the fusion keeps it
    checker = 20.0 * ((np.indices(truth.shape).sum(0) % 2) * 2 - 1)
    net = truth + checker
    r = fuse(lq, net, psf, 5.0, target=1.0)
    kept = np.corrcoef((r.image - truth).ravel(), checker.ravel())[0, 1]
    assert kept > 0.95


def test_bad_arguments_are_named():
    truth, psf, lq = _scene()
    with pytest.raises(ParameterError, match="rs"):
        fuse(lq, truth[:10], psf, 5.0)
    with pytest.raises(ParameterError, match="psf"):
        fuse(lq, truth, np.ones((4, 4)), 5.0)
    with pytest.raises(ParameterError, match="sigma"):
        fuse(lq, truth, psf, 0.0)
    with pytest.raises(ParameterError, match="target"):
        fuse(lq, truth, psf, 5.0, target=0)


def test_restorer_cli_and_fits_carry_the_fusion(tmp_path, tiny_ckpt, capsys):
    from astropy.io import fits

    from galviewer import Restorer
    from galviewer.cli import main
    from galviewer.core.measure.compare import compare_restoration
    from tests.helpers import framing_forward, write_flt

    flt = write_flt(tmp_path / "x_flt.fits")
    restorer = Restorer.from_file(tiny_ckpt, "cpu", uncertainty=False)
    restorer._forward = framing_forward  # a network whose restoration cannot explain its data
    stamp_rs = restorer.restore(np.asarray(fits.getdata(flt, ("SCI", 1)))[50:114, 90:154])
    fused = restorer.restore(np.asarray(fits.getdata(flt, ("SCI", 1)))[50:114, 90:154], consistency=True)
    cons = fused.meta["consistency"]
    assert stamp_rs.meta["consistency"] is None and cons["chi2"] <= 1.0 + 1e-6 < cons["chi2_network"]
    m = compare_restoration(fused)
    assert m.residual_chi2 <= 1.05 and abs(m.flux_conservation - 1) < abs(
        compare_restoration(stamp_rs).flux_conservation - 1)
    out = tmp_path / "o.fits"
    Restorer._forward, saved = (lambda self, batch: framing_forward(batch)), Restorer._forward
    try:
        assert main(["restore", str(flt), "--xy", "120.3", "80.7", "--ext", "SCI,1", "-o", str(out), "--model",
                     str(tiny_ckpt), "--no-uncertainty", "--consistency"]) == 0
    finally:
        Restorer._forward = saved
    assert "consistency: χ²" in capsys.readouterr().out
    h = fits.getheader(out)
    assert h["CONSIST"] is True and h["CHI2_RS"] <= 1.0 + 1e-6 < h["CHI2_NET"] and h["CONS_MU"] > 0
