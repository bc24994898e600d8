"""Issue 11 (1): real HST cut-outs restored by the shipped model, judged without ground truth.

The shipped model (0.2) alone does not meet issue 11's limits on these cases (see README, *Real HST data*).  As the
app restores a click — large-scale anchoring, an 8-px context margin, the 8 flips averaged — every galaxy meets
all five (χ², flux, RS/LQ rms, border, new sources).  Asserted here: that, the verdict naming every failure (never a
silent "ok"), point-source mode on the WFC3/IR star, and the data-consistency step making every restoration
explain its input to the noise.
"""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from galviewer import Restorer, cutout, open_image
from galviewer.core.io.stamps import DEFAULT_CONTEXT
from galviewer.core.restore.verdict import LIMITS, assess, compare_restoration

DATA = Path(__file__).resolve().parents[1] / "data" / "realdata"
CASES = sorted(p.stem for p in DATA.glob("*.fits"))
ISSUE_CHECKS = ("chi2", "flux", "rms", "border", "new_sources")


@pytest.fixture(scope="module")
def restorer():
    return Restorer.from_pretrained(device="cpu", uncertainty=False)


def _stamp(name, context=0):
    """The stamp a user would click: on the detected source nearest to the cut-out's centre, ``context`` px
    larger on every side."""
    from galviewer.core.measure.detect import detect

    with open_image(DATA / f"{name}.fits") as im:
        ny, nx = im.shape
        cx, cy = (nx - 1) / 2, (ny - 1) / 2
        best = min(detect(im), key=lambda s: (s.x - cx) ** 2 + (s.y - cy) ** 2)
        return cutout(im, best.x, best.y, 128 if name == "wfc3ir_spiral" else 64, context=context)


def _click(restorer, name, context=DEFAULT_CONTEXT, **settings):
    """Restore a case as the app restores a click — the one pipeline, with ``settings`` changed — and judge it."""
    from galviewer.core.measure.detect import detect
    from galviewer.core.restore.pipeline import DEFAULTS, Pipeline

    config = DEFAULTS.replace(size=128 if name == "wfc3ir_spiral" else 64, context=context,
                              uncertainty=restorer.uncertainty, **settings)
    with open_image(DATA / f"{name}.fits") as im:
        ny, nx = im.shape
        best = min(detect(im), key=lambda s: (s.x - (nx - 1) / 2) ** 2 + (s.y - (ny - 1) / 2) ** 2)
        r = Pipeline(restorer, config).run(im, best.x, best.y)
    return r, r.meta["verdict"]


def test_the_set_is_small_real_and_documented():
    assert len(CASES) == 7 and all((DATA / f"{c}.fits").stat().st_size <= 100_000 for c in CASES)
    text = (DATA / "PROVENANCE.md").read_text()
    for c in CASES:
        h = fits.getheader(DATA / f"{c}.fits")
        assert h["ORIGFILE"] in text and c in text
    with open_image(DATA / "stis_star.fits") as im:
        assert im.meta.instrument == "STIS" and im.err is not None and im.dq is not None


GALAXIES = ["wfc3ir_cd_neighbour", "wfc3ir_dwarf", "wfc3ir_faint", "wfc3ir_group", "wfc3ir_spiral"]


def test_every_galaxy_meets_the_issue_limits_as_the_app_restores_it(restorer):
    """Issue 11's done-when for galaxies: restored as a click is — anchored, with the 8-px context margin and the
    8 flips — the cD's neighbour, the dwarf, the faint galaxy, the group and the spiral each meet χ² ≤ 3, flux
    within 5 %, RS/LQ rms ≤ 1, border ≤ 1.5 and no new source (only the range check may fail: model 0.2 was
    trained for a 0.114″ PSF, the mosaic's is 0.166″).  The network alone loses 8–38 % of the bright galaxies' flux or
    leaves χ² 1.3–14; without the margin the dwarf's texture and 1-px rim fail (RS/LQ rms 1.59, border 4.06)."""
    tta = Restorer.from_pretrained(device="cpu", uncertainty=True)
    failing_alone, losing_a_source, judged = [], [], {}
    for name in GALAXIES:
        alone, v0 = _click(restorer, name, anchor=0)  # χ² and flux: the 8 flips change neither much
        r, v = _click(tta, name)
        assert r.meta["context"] == 8 and r.meta["anchor"]["scale"] == 2.0 and r.data.shape == alone.data.shape
        assert all(v.checks[k].ok for k in ISSUE_CHECKS), (name, v.summary())
        failed = [k for k, c in v.checks.items() if not c.ok and k not in ("sources", "structure")]
        assert failed in ([], ["range"]) and (not failed or "PSF FWHM 0.166″" in v.checks["range"].text), failed
        judged[name] = (r, v)
        if not v.checks["sources"].ok:  # issue 23 (4): every source of the stamp, not only the target
            losing_a_source.append(name)
        if not all(v0.checks[k].ok for k in ("chi2", "flux")):
            failing_alone.append(name)
    assert failing_alone == ["wfc3ir_cd_neighbour", "wfc3ir_dwarf", "wfc3ir_group", "wfc3ir_spiral"]
    # the spiral's stamp holds a faint source 37 px from its centre that RS keeps only 44 % of: named, not "ok"
    assert losing_a_source == ["wfc3ir_spiral"]
    # the group's brighter neighbours inside the stamp are over-restored by the network (issue 23, item 4): PSF⊗RS
    # lies above the data by 11σ of the matched filter on their cores while χ² reads 0.4 — named by the structure
    # check, the only galaxy it names; the local repair (--repair) moves RS towards the data there: amber
    from galviewer.core.restore.verdict import _segments

    assert [n for n, (_, v) in judged.items() if not v.checks["structure"].ok] == ["wfc3ir_group"]
    r0, v0 = judged["wfc3ir_group"]
    seg = _segments(r0.lq.astype(float), r0.stamp.background_rms, None)
    assert v0.checks["chi2"].value < 1 and len(v0.structure.regions) >= 1 and r0.meta["repair"] is None
    for x, y, peak, _ in v0.structure.regions:
        assert peak < -LIMITS["structure"] and seg[round(y), round(x)] > 0  # a hole, on a source of LQ
    r, v = _click(tta, "wfc3ir_group", repair=True)
    assert r.meta["repair"]["regions"] >= 2 and r.meta["repair"]["left"] == 0 and v.level == "caution"
    assert v.checks["structure"].ok and v.checks["chi2"].value < v0.checks["chi2"].value
    _, v = _click(tta, "wfc3ir_dwarf", context=0)
    assert not v.checks["rms"].ok and not v.checks["border"].ok, v.summary()


@pytest.mark.parametrize("name", ["wfc3ir_star", "stis_star"])
def test_bright_stars_are_flagged_by_name_not_reported_ok(restorer, name):
    """Restored as galaxies (point-source mode off: issue 23 made it automatic for unresolved sources)."""
    _, v = _click(restorer, name, point_source=False)
    assert not v.ok and v.checks["chi2"].value > 3
    assert v.summary().startswith("χ² ") and "χ²" in v.failures[0]
    # and the reason is named: far brighter than anything the model was trained on
    assert not v.checks["range"].ok and "peak S/N too high" in v.checks["range"].text
    # anchored (the default), the star's flux is kept to 2 %, and χ² is 6–12 times lower than the network's
    assert abs(v.checks["flux"].value - 1) < 0.02
    _, alone = _click(restorer, name, anchor=0, point_source=False)
    assert alone.checks["chi2"].value > 4 * v.checks["chi2"].value


@pytest.mark.parametrize("name", CASES)
def test_the_consistency_step_explains_every_case_to_the_noise(restorer, name):
    st = _stamp(name)
    net = restorer.restore(st)
    fused = restorer.restore(st, consistency=True)
    v_net, v = assess(net), assess(fused)
    cons = fused.meta["consistency"]
    assert v.checks["chi2"].value <= 1.0 + 1e-3 and cons["chi2"] <= 1.0 + 1e-6
    if v_net.checks["chi2"].value > 1.0:
        # pulled towards the data: flux conservation no worse (or within 6 %), and within 10 % for the stars
        assert abs(v.checks["flux"].value - 1) <= max(abs(v_net.checks["flux"].value - 1) + 1e-3, 0.06)
        if name.endswith("star"):
            assert abs(v.checks["flux"].value - 1) < 0.10
    else:
        assert np.array_equal(fused.data, net.data) and np.isinf(cons["mu"])


def test_drizzled_cutouts_are_drz_not_flt():
    # FILETYPE='SCI' is written on FLT and DRZ alike: the drizzle keywords decide (no CR cleaning on them)
    for name in CASES:
        with open_image(DATA / f"{name}.fits") as im:
            drizzled = "D001SCAL" in im.header or "NDRIZIM" in im.header
            assert (im.meta.kind == "DRZ") == drizzled, name
            if name == "stis_star":
                assert im.meta.kind == "FLT"


def test_detection_deblends_the_compact_group_by_default(tmp_path, capsys):
    from astropy.table import Table

    from galviewer.cli import main
    from galviewer.core.measure.detect import detect

    with open_image(DATA / "wfc3ir_group.fits") as im:
        merged, split = detect(im, deblend=False), detect(im)
    assert len(split) > len(merged) >= 4
    # no ERR array in a drizzled file: the S/N is background-limited, never empty
    assert all(np.isfinite(s.snr) and s.snr > 5 for s in split)
    out = tmp_path / "c.ecsv"
    assert main(["detect", str(DATA / "wfc3ir_group.fits"), "-o", str(out)]) == 0
    assert len(Table.read(out)) == len(split)
    assert main(["detect", str(DATA / "wfc3ir_group.fits"), "-o", str(tmp_path / "m.ecsv"), "--no-deblend"]) == 0
    assert len(Table.read(tmp_path / "m.ecsv")) == len(merged)


def test_the_realdata_model_explains_the_bright_galaxies_better_than_the_default():
    """Issue 11 (3, 7): the model fine-tuned with real PSFs, bright-source noise, halos and blends
    (``galviewer-small-realdata``) halves the residual χ² of the bright WFC3/IR galaxies and brings their flux
    closer to conservation; it is not the default (README, *Models*: it loses 0.18 dB on Table 1, broadens
    stars)."""
    default = Restorer.from_pretrained(device="cpu", uncertainty=False, anchor=0)  # the networks alone
    realdata = Restorer.from_pretrained("galviewer-small-realdata", device="cpu", uncertainty=False, anchor=0)
    assert realdata.trained_fwhm == pytest.approx((1.531, 3.0)) and default.trained_fwhm is None
    card = realdata.metadata.card()
    assert "12 shipped HST PSF shapes at core FWHM 1.6–3 px" in card and "0.0005–0.15" in card
    assert "shipped HST PSF shapes" not in default.metadata.card()
    assert "anchored to the data's large scales by default" in card  # the card says what the app adds
    for name in ("wfc3ir_dwarf", "wfc3ir_cd_neighbour", "wfc3ir_group"):
        st = _stamp(name)
        old = assess(r0 := default.restore(st), compare_restoration(r0))
        new = assess(r1 := realdata.restore(st), compare_restoration(r1))
        assert new.checks["chi2"].value < 0.5 * old.checks["chi2"].value, name
        assert new.checks["range"].ok, new.checks["range"].text  # its PSF range covers the mosaic's 2.8 px
        if name != "wfc3ir_group":  # the group kept its flux already (1.06 → 1.15)
            assert abs(new.checks["flux"].value - 1) < abs(old.checks["flux"].value - 1) - 0.1, name


@pytest.mark.parametrize("name", ["wfc3ir_star", "stis_star"])
def test_point_source_mode_meets_the_star_limits(restorer, name):
    """Issue 11's limits for stars — flux within 10 %, border ≤ 1.5, RS rms ≤ LQ rms, a verdict naming χ² — met
    by point-source mode on both real stars, restored as a click (the network alone: RS/LQ rms ×80 and ×130).
    The network sees the remainder with the star's core filled with sky: left in, the PSF model's mismatch there
    (−1,500σ on the STIS star, fitted with a Gaussian) squeezed the rest of the stamp below the network's noise
    range and the STIS star came back with a lattice of dots (RS/LQ rms 3.4)."""
    r, v = _click(restorer, name, point_source=True)
    st = r.stamp
    c = v.checks
    assert abs(c["flux"].value - 1) < 0.05 and c["border"].ok and c["rms"].value <= 0.7, v.summary()
    assert c["new_sources"].value == 0 and not c["chi2"].ok and v.failures[0].startswith("χ²")  # wings, spikes stay
    assert r.meta["rescale"] == "minmax"
    star = r.meta["point_source"]
    assert star["explained"] > 0.95
    # issue 23 (2): the residual takes the star through the PSF it was fitted with, so χ² measures how well RS
    # explains the data through the real PSF — within 2× of a plain PSF fit's χ² with that PSF (it was 400× off)
    from galviewer.core.restore.poststeps import fit_star

    plain = fit_star(restorer, st)
    sig = st.err if st.err is not None else st.background_rms
    use = ~(st.bad | st.padded)
    chi2_fit = float(np.mean((((st.lq - plain.model - plain.sky) / sig) ** 2)[use]))
    assert c["chi2"].value <= 2 * chi2_fit, (c["chi2"].value, chi2_fit)
    assert r.meta["residual_psf"].startswith("the star through")
    assert _click(restorer, name, anchor=0, point_source=False)[1].checks["rms"].value > 10
    # and it is what a click gives by default: the star is unresolved (spread_model), restored as one
    auto, _ = _click(restorer, name)
    decision = auto.meta["point_source_decision"]
    assert decision["mode"] == "auto" and decision["point"] and decision["spread_model"] < 0.0055
    assert np.array_equal(auto.data, r.data)
    # its position in the shown stamp's pixels, not the larger cut-out's
    assert np.hypot(star["x"] - st.center_in_stamp[0], star["y"] - st.center_in_stamp[1]) < 1.0
    # the restored star is sharper than the input: the target PSF (1.3 px FWHM) against 2.8 px (WFC3/IR: peak
    # ×2 and more) and 1.4 px (STIS, its Gaussian stand-in: ×1.1)
    gain = {"wfc3ir_star": 2.0, "stis_star": 1.1}[name]
    assert r.data.max() - star["sky"] > gain * (st.lq.max() - star["sky"])
    # and sits on the sky, with no dark ring: restoring the PSF model's mismatch near the core (or anchoring the
    # star's model with the Gaussian kernel) once dug one 80σ deep at 1.5–3 px
    yy, xx = np.mgrid[: r.data.shape[0], : r.data.shape[1]]
    rad = np.hypot(xx - star["x"], yy - star["y"])
    for a, b in ((1.5, 3), (3, 4.5), (4.5, 6), (6, 8)):
        assert float(np.mean(r.data[(rad >= a) & (rad < b)])) - star["sky"] > -3 * st.background_rms, (a, b)


def test_point_source_mode_from_the_cli_on_the_wfc3ir_star(restorer, tmp_path, capsys):
    """The CLI's --point-source: the empirical WFC3/IR F105W PSF fits the star, the header records it; without
    it the CLI says that the source is unresolved and names the option."""
    from galviewer.cli import main

    r, _ = _click(restorer, "wfc3ir_star", point_source=True)
    st, star = r.stamp, r.meta["point_source"]
    assert "empirical wfc3_ir_f105w" in star["psf"] and star["explained"] > 0.99
    out = tmp_path / "star.fits"
    assert main(["restore", str(DATA / "wfc3ir_star.fits"), "--xy", f"{st.center[0]:.3f}", f"{st.center[1]:.3f}",
                 "-o", str(out), "--no-uncertainty", "--point-source"]) == 0
    assert "point source: flux 15" in capsys.readouterr().out
    h = fits.getheader(out)
    assert h["PTSRC"] is True and h["PTSFLUX"] == pytest.approx(star["flux"], rel=0.02)
    assert h["CONTEXT"] == 8 and (h["PTSX"], h["PTSY"]) == pytest.approx((star["x"], star["y"]), abs=0.3)
    # by default (auto) the CLI restores it as a star too, and the header says how it decided
    assert main(["restore", str(DATA / "wfc3ir_star.fits"), "--xy", f"{st.center[0]:.3f}", f"{st.center[1]:.3f}",
                 "-o", str(tmp_path / "auto.fits"), "--no-uncertainty"]) == 0
    assert "point source (unresolved: spread_model" in capsys.readouterr().out
    h = fits.getheader(tmp_path / "auto.fits")
    assert h["PTSRC"] is True and h["PTSMODE"] == "auto" and h["SPREAD"] < 0.0055
    # restored as a galaxy (--no-point-source), the CLI points to the mode (a note, on stderr)
    assert main(["restore", str(DATA / "wfc3ir_star.fits"), "--xy", f"{st.center[0]:.3f}", f"{st.center[1]:.3f}",
                 "-o", str(tmp_path / "galaxy.fits"), "--no-uncertainty", "--no-point-source"]) == 0
    assert "unresolved" in (err := capsys.readouterr().err) and "--point-source restores a star" in err
