"""σ calibration (issue 23, item 7): the flip spread turned into a 1σ that covers 68 % of |RS − GT|."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from galviewer.core.nn.weights import load_checkpoint
from galviewer.core.restore.calibration import SNR_EDGES, SigmaCalibration, coverage_by_bin, sigma_title
from galviewer.core.restore.engine import Restorer
from galviewer.errors import ParameterError
from trainer.calibrate import calibrate, fit_factors
from trainer.cli import main as train_main


def test_fit_factors_recover_a_known_error_scale_per_bin():
    rng = np.random.default_rng(3)
    n = 200_000
    t = np.exp(rng.uniform(np.log(0.1), np.log(200.0), n))  # every bin populated
    spread = rng.uniform(0.5, 2.0, n)
    # the error is 5× the spread in the faintest pixels, falling bin by bin to 3.4× in the brightest (a trend, as
    # measured on real restorations: the factors are interpolated between bins, so a step is not their model)
    b = np.searchsorted(SNR_EDGES, t, side="right")
    truth = np.linspace(5.0, 3.4, len(SNR_EDGES) + 1)[b]
    err = np.abs(rng.normal(0, truth * spread))
    k = fit_factors(err, spread, np.zeros(n), t)
    assert len(k) == len(SNR_EDGES) + 1
    for i, ki in enumerate(k):  # the 68th percentile of a half-normal is 0.994σ
        assert ki == pytest.approx(0.994 * truth[b == i][0], rel=0.03)
    cal = SigmaCalibration(edges=SNR_EDGES, k=k)
    fresh = np.abs(rng.normal(0, truth * spread))
    cov = coverage_by_bin(fresh, cal.factors(t) * spread, t, SNR_EDGES)
    assert cov["all"]["coverage"] == pytest.approx(0.68, abs=0.01)
    assert all(abs(v["coverage"] - 0.68) < 0.02 for v in cov.values())
    # the plain spread covers far less than 68 %
    assert coverage_by_bin(fresh, spread, t, SNR_EDGES)["all"]["coverage"] < 0.4


def test_the_factor_has_no_step_at_a_bin_edge():
    """A σ map must not draw the bins' edges as contours (release 0.2's first two factors differ by 1.6×)."""
    cal = SigmaCalibration(edges=SNR_EDGES, k=(1.8, 2.9, 3.3, 3.2, 3.3, 3.4, 3.2, 2.9, 4.2))
    for e in SNR_EDGES:
        below, above = cal.factors(np.array([e * 0.999, e * 1.001]))
        assert abs(above - below) < 0.01 * below
    centres = np.sqrt(np.array((0.5, *SNR_EDGES[:-1])) * np.array(SNR_EDGES))  # geometric centres of inner bins
    np.testing.assert_allclose(cal.factors(centres[1:]), cal.k[1:-1], rtol=1e-12)  # each bin's factor at its centre
    assert cal.factors(np.array([-5.0, 0.0, 0.1]))[0] == cal.k[0] == cal.factors(np.array([0.2]))[0]
    assert cal.factors(np.array([1e6]))[0] == cal.k[-1]


def test_a_ground_truth_with_its_own_noise_is_allowed_for():
    rng = np.random.default_rng(4)
    n = 100_000
    spread, sg, t = np.ones(n), np.full(n, 2.0), np.full(n, 10.0)
    err = np.abs(rng.normal(0, 3.0, n) + rng.normal(0, 2.0, n))  # the restoration's error and GT's noise
    k = fit_factors(err, spread, sg, t)
    assert k[6] == pytest.approx(3.0, rel=0.06)


def test_bad_calibrations_are_refused_by_name():
    with pytest.raises(ParameterError, match="sigma_calibration"):
        SigmaCalibration(edges=(1.0, 2.0), k=(1.0, 2.0))
    with pytest.raises(ParameterError, match="positive"):
        SigmaCalibration(edges=(1.0,), k=(1.0, -2.0))
    with pytest.raises(ParameterError, match="ascending"):
        SigmaCalibration(edges=(2.0, 1.0), k=(1.0, 1.0, 1.0))
    with pytest.raises(ParameterError, match="malformed"):
        SigmaCalibration.from_dict({"edges": [1.0]})
    with pytest.raises(ParameterError, match="no restored-S/N bin"):
        fit_factors(np.ones(10), np.ones(10), np.zeros(10), np.ones(10))


def test_calibrate_a_checkpoint_end_to_end(tiny_ckpt, realistic_shards, tmp_path):
    out, save = tmp_path / "report", tmp_path / "calibrated.safetensors"
    res = calibrate(tiny_ckpt, realistic_shards, out, save=save, count=6, device="cpu", echo=lambda m: None)
    test = res["test"]
    raw, cal = (test[k]["by_restored_snr"]["all"]["coverage"] for k in ("spread", "calibrated"))
    # held-out pairs (other ground truths, other noise draws): near 68 %, and nearer than the plain spread
    assert abs(cal - 0.68) < 0.08 and abs(cal - 0.68) <= abs(raw - 0.68)
    assert (out / "coverage.md").read_text().count("calibrated σ") >= 3
    assert json.loads((out / "coverage.json").read_text())["k"] == res["k"]
    # the checkpoint carries the factors; its tensors are unchanged
    before, after = load_checkpoint(tiny_ckpt), load_checkpoint(save)
    assert after[1].weights_sha256 == before[1].weights_sha256
    assert after[1].extra["sigma_calibration"]["k"] == res["k"]
    # restoring with it: σ = k(t) × the spread, and every place says it is a calibrated 1σ
    plain = Restorer.from_file(tiny_ckpt, "cpu")
    calibrated = Restorer.from_file(save, "cpu")
    assert plain.sigma_calibration is None and calibrated.sigma_calibration is not None
    rng = np.random.default_rng(1)
    img = rng.normal(0, 1, (64, 64)).astype(np.float32)
    img[28:36, 28:36] += 40.0
    a, b = plain.restore(img), calibrated.restore(img)
    assert np.array_equal(a.data, b.data)
    st = b.stamp
    expect = calibrated.sigma_calibration.apply(a.sigma, b.data, st.background_level, st.background_rms)
    np.testing.assert_allclose(b.sigma, expect, rtol=1e-6)
    assert a.meta["sigma_kind"] == "flip spread" and b.meta["sigma_kind"] == "calibrated 1σ"
    assert "not a 1σ" in sigma_title(a.meta) and sigma_title(b.meta).startswith("1σ")
    off = calibrated.restore(img, uncertainty=False)  # no flips: no σ, and no name left over from the last one
    assert off.sigma is None and off.meta["sigma_kind"] is None
    assert sigma_title(off.meta) == "no uncertainty (flips off)"
    from galviewer.core.io.write import write_stamp

    for r, kind in ((a, "SPREAD"), (b, "1SIGMA")):
        path = tmp_path / f"{kind}.fits"
        write_stamp(path, r)
        with fits.open(path) as hdul:
            assert hdul["SIGMA"].header["SIGKIND"] == kind
    # an existing report is kept unless asked
    with pytest.raises(ParameterError, match="already holds"):
        calibrate(tiny_ckpt, realistic_shards, out, count=6, device="cpu", echo=lambda m: None)


def test_calibrate_command_line_refuses_an_existing_save_file(tiny_ckpt, realistic_shards, tmp_path, capsys):
    keep = tmp_path / "mine.safetensors"
    keep.write_bytes(b"precious")
    rc = train_main(["calibrate", str(tiny_ckpt), "--data", str(realistic_shards), "-o", str(tmp_path / "r"),
                     "--save", str(keep), "--count", "2", "--device", "cpu"])
    assert rc != 0
    assert "mine.safetensors exists; choose another file or --overwrite" in capsys.readouterr().err
    assert keep.read_bytes() == b"precious" and not (tmp_path / "r").exists()
