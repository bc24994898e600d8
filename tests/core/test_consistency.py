"""Issue 11 (5): the data-consistency fusion explains the data to the noise and keeps the network elsewhere."""

import numpy as np
import pytest

from galviewer.core.psf.degrade import convolve
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.core.restore.consistency import fuse
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
    from galviewer.core.restore.verdict import compare_restoration
    from tests.helpers import framing_forward, write_flt

    flt = write_flt(tmp_path / "x_flt.fits")
    restorer = Restorer.from_file(tiny_ckpt, "cpu", uncertainty=False, anchor=0)  # the fusion alone
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
                     str(tiny_ckpt), "--no-uncertainty", "--consistency", "--anchor", "0"]) == 0
    finally:
        Restorer._forward = saved
    assert "consistency: χ²" in capsys.readouterr().out
    h = fits.getheader(out)
    assert h["CONSIST"] is True and h["CHI2_RS"] <= 1.0 + 1e-6 < h["CHI2_NET"] and h["CONS_MU"] > 0
    assert h["ANCHOR"] == 0


def test_anchoring_is_the_default_and_carried_by_the_restorer_cli_and_fits(tmp_path, tiny_ckpt, capsys):
    from astropy.io import fits

    from galviewer import Restorer
    from galviewer.cli import main
    from galviewer.core.restore.consistency import DEFAULT_ANCHOR
    from galviewer.core.restore.verdict import assess
    from tests.helpers import framing_forward, write_flt

    flt = write_flt(tmp_path / "x_flt.fits")
    data = np.asarray(fits.getdata(flt, ("SCI", 1)))[50:114, 90:154]
    restorer = Restorer.from_file(tiny_ckpt, "cpu", uncertainty=False)
    restorer._forward = framing_forward  # a network that frames and loses flux
    assert restorer.anchor == DEFAULT_ANCHOR == 2.0
    net, anchored = restorer.restore(data, anchor=0), restorer.restore(data)
    assert net.meta["anchor"] is None and anchored.meta["anchor"]["scale"] == 2.0
    v_net, v = assess(net), assess(anchored)
    assert v.checks["chi2"].value < 0.5 * v_net.checks["chi2"].value
    assert v.checks["border"].value < 0.5 * v_net.checks["border"].value  # the frame is gone
    with pytest.raises(ParameterError) as e:
        restorer.restore(data, anchor=-1)
    assert e.value.name == "anchor"
    out = tmp_path / "o.fits"
    Restorer._forward, saved = (lambda self, batch: framing_forward(batch)), Restorer._forward
    try:
        assert main(["restore", str(flt), "--xy", "120.3", "80.7", "--ext", "SCI,1", "-o", str(out), "--model",
                     str(tiny_ckpt), "--no-uncertainty"]) == 0
    finally:
        Restorer._forward = saved
    assert "large scales anchored to the data (σ 2 px)" in capsys.readouterr().out
    assert fits.getheader(out)["ANCHOR"] == 2.0


# ---------------------------------------------------------------- large-scale anchoring (issue 11)
def _halo_scene(seed=0, noise=2.0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    truth = 10.0 + 400.0 * np.exp(-((xx - 32) ** 2 + (yy - 30) ** 2) / (2 * 2.5**2))
    psf = gaussian_psf(1.88, 7)
    lq = convolve(truth, psf) + rng.normal(0.0, noise, truth.shape)
    # the network's typical failures on real images: 20 % of the flux lost, a dark frame, a wrong sky level
    net = 10.0 + 0.8 * (truth - 10.0) - 3.0
    net[:4, :] -= 6.0
    net[:, -4:] -= 6.0
    return truth, psf, lq, net, noise


def test_anchoring_gives_back_the_lost_flux_the_frame_and_the_sky_level():
    from galviewer.core.restore.consistency import anchor

    truth, psf, lq, net, noise = _halo_scene()
    a = anchor(lq, net, psf, noise)

    def chi2(img):
        return float(np.mean(((lq - convolve(img, psf)) / noise) ** 2))

    flux = float((truth - 10).sum())
    assert abs(float((net - 10).sum()) - flux) > 0.5 * flux  # the sky offset alone is 3 × 64² = 0.5 of the flux
    assert abs(float((a.image - 10).sum()) - flux) < 0.05 * flux  # summed over 4,096 px of sky and galaxy
    assert chi2(net) > 10 and chi2(a.image) < 1.3
    assert abs(float(np.median(a.image[20:44, :10])) - 10.0) < 0.5  # the sky level is the data's
    assert abs(float(a.image[1, 8:56].mean()) - 10.0) < 1.5  # the frame (−9 there) is mostly gone
    # the fine scales stay the network's: the peak is not re-blurred to the data's, and is the truth's
    assert a.image.max() > 1.05 * lq.max() and abs(a.image.max() / truth.max() - 1) < 0.1
    assert a.scale == 2.0 and a.iterations == 3 and a.threshold == 3.0 and a.changed_fraction > 0


def test_anchoring_a_restoration_that_explains_the_data_adds_almost_no_noise():
    from galviewer.core.restore.consistency import anchor

    for seed in range(3):
        truth, psf, lq, _, noise = _halo_scene(seed)
        a = anchor(lq, truth, psf, noise)
        # thresholded at 3σ of the smoothed residual: a few pixels move, by a small fraction of the noise
        assert float(np.sqrt(np.mean((a.image - truth) ** 2))) < 0.08 * noise
        plain = anchor(lq, truth, psf, None)  # no threshold: the smoothed noise comes in
        assert float(np.sqrt(np.mean((plain.image - truth) ** 2))) > 0.15 * noise


def test_anchoring_ignores_masked_pixels_and_names_bad_parameters():
    from galviewer.core.restore.consistency import anchor

    _, psf, lq, net, noise = _halo_scene()
    hole = np.zeros(lq.shape, bool)
    hole[40:50, 40:50] = True
    lq_bad = lq.copy()
    lq_bad[hole] = 1e6  # a saturated, flagged block must not leak into the restoration
    a = anchor(lq_bad, net, psf, noise, mask=hole)
    b = anchor(lq, net, psf, noise, mask=hole)
    assert np.isfinite(a.image).all() and float(np.abs(a.image - b.image).max()) < 1e-3
    for kwargs, name in (({"scale": 0.0}, "anchor scale"), ({"iterations": 0}, "anchor iterations"),
                         ({"threshold": -1.0}, "anchor threshold")):
        with pytest.raises(ParameterError) as e:
            anchor(lq, net, psf, noise, **kwargs)
        assert e.value.name == name
    with pytest.raises(ParameterError) as e:
        anchor(lq, net[:10], psf, noise)
    assert e.value.name == "rs"
    with pytest.raises(ParameterError) as e:
        anchor(lq, net, psf, 0.0)
    assert e.value.name == "sigma"


def test_a_post_step_that_cannot_run_says_why(tiny_ckpt):
    from galviewer import Restorer
    from galviewer.core.restore.result import steps_text

    r = Restorer.from_file(tiny_ckpt, "cpu", uncertainty=False)
    r.MAX_CONSISTENCY_PIXELS = 32 * 32  # as a region larger than the post-steps' bound
    rng = np.random.default_rng(0)
    out = r.restore(rng.normal(100.0, 1.0, (64, 64)).astype(np.float32), consistency=True)
    assert out.meta["anchor"] is None and out.meta["consistency"] is None
    text = steps_text(out.meta)
    assert "anchoring skipped: larger than 1024 pixels" in text and "consistency skipped: larger than" in text
