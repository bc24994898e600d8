"""harvest: the paper's stamp selection (§3.1, §3.3) on a synthetic mosaic whose every object has a known fate."""

import json
import math

import numpy as np
import pytest
from astropy.io import fits

from galviewer.core.measure.sersic import render_sersic
from galviewer.core.psf.degrade import convolve
from galviewer.core.psf.gaussian import gaussian_psf
from galviewer.errors import ParameterError
from trainer.harvest import HarvestConfig, harvest, harvest_image
from trainer.shards import ShardSet
from trainer.simulate import load_prior

FWHM = 1.88
RMS = 1.0


def _add(img, x, y, flux, r50, n, e1=0.0, e2=0.0):
    """Add a PSF-convolved Sérsic galaxy of total flux ``flux`` (a point source when r50 is None)."""
    size = 96 if r50 is None or r50 < 15 else 200
    ix, iy = round(x), round(y)
    sx, sy = x - ix + size // 2, y - iy + size // 2
    if r50 is None:
        stamp = np.zeros((size, size))
        stamp[size // 2, size // 2] = 1.0
        stamp = convolve(stamp, gaussian_psf(FWHM, 15))
    else:
        stamp = convolve(render_sersic((size, size), sx, sy, 1.0, r50, n, e1, e2), gaussian_psf(FWHM, 15))
    stamp *= flux / stamp.sum()
    y0, x0 = iy - size // 2, ix - size // 2
    ys, xs = slice(max(y0, 0), min(y0 + size, img.shape[0])), slice(max(x0, 0), min(x0 + size, img.shape[1]))
    img[ys, xs] += stamp[ys.start - y0: ys.stop - y0, xs.start - x0: xs.stop - x0]


@pytest.fixture(scope="module")
def mosaic():
    return build_mosaic()


def build_mosaic():
    """A 700² field: 13 galaxies to keep, and one object per rejection rule (their positions in ``fates``)."""
    rng = np.random.default_rng(7)
    img = np.zeros((700, 700))
    good = []
    for k, (gx, gy) in enumerate([(x, y) for y in (90, 230, 370) for x in (90, 230, 370, 510)]):
        n, r50 = 1.0 + 0.25 * (k % 5), 3.0 + 0.2 * k
        e1, e2 = 0.1 * math.cos(k), 0.1 * math.sin(k)
        _add(img, gx + 0.3, gy - 0.2, 20000.0, r50, n, e1, e2)
        good.append((gx + 0.3, gy - 0.2))
    fates = {}
    for x, y in ((620, 100), (620, 250), (620, 400), (100, 520), (250, 520), (400, 520)):
        _add(img, x, y, 30000.0, None, 0)  # stars
        fates[(x, y)] = {"too_small", "star"}
    _add(img, 600, 620, 400000.0, 30.0, 1.0)  # huge: w > 128
    fates[(600, 620)] = {"too_large"}
    _add(img, 4, 640, 20000.0, 3.5, 1.0)  # on the left edge: truncated
    fates[(4, 640)] = {"truncated"}
    _add(img, 150, 640, 30000.0, 3.0, 1.0)  # a pair: the fainter member is rejected ...
    _add(img, 164, 640, 8000.0, 3.0, 1.0)
    fates[(164, 640)] = {"bright_neighbour"}
    good.append((150, 640))  # ... the brighter one is kept (its neighbour is < 0.8 of its peak)
    _add(img, 300, 640, 20000.0, 4.0, 1.0)
    img[640, 301] += 3000.0  # a cosmic ray next to the centre: sharper than the PSF
    fates[(300, 640)] = {"too_sharp"}
    img += 50.0 + rng.normal(0.0, RMS, img.shape)
    return img.astype(np.float32), good, fates


def test_the_selection_keeps_the_isolated_resolved_galaxies_and_rejects_each_kind_of_reject(mosaic):
    img, good, fates = mosaic
    res = harvest_image(img, HarvestConfig(psf_fwhm=FWHM, max_rms=None))
    kept = [(r["x"], r["y"]) for r in res.rows]
    for gx, gy in good:
        assert min(math.hypot(x - gx, y - gy) for x, y in kept) < 1.0, (gx, gy)
    assert len(kept) == len(good)
    for x, y in kept:
        assert all(math.hypot(x - fx, y - fy) > 3 for fx, fy in fates)
    for rule in ("too_large", "truncated", "bright_neighbour", "too_sharp"):
        assert res.rejected[rule] >= 1, rule
    assert res.rejected["too_small"] + res.rejected["star"] >= 6  # the stars
    for stamp, row, params in zip(res.stamps, res.rows, res.params, strict=True):
        assert stamp.shape == (64, 64) and np.isfinite(stamp).all()
        assert row["w"] == 2 * math.floor(4 * row["a"] + 5)
        assert params[4] == pytest.approx(RMS, rel=0.15)  # noise: the background rms
        assert 2.5 < row["r50"] < 6.5 and 0.5 < row["n"] < 3.0


def test_stamps_are_padded_with_matching_noise(mosaic):
    img, _, _ = mosaic
    res = harvest_image(img, HarvestConfig(psf_fwhm=FWHM, max_rms=None))
    for stamp, row in zip(res.stamps, res.rows, strict=True):
        w = row["w"]
        assert w < 64
        o = (64 - w) // 2
        pad = np.concatenate([stamp[:o].ravel(), stamp[o + w:].ravel()])
        assert abs(np.mean(pad) - 50.0) < 0.5 and abs(np.std(pad) - RMS) < 0.2


def test_harvest_writes_shards_a_prior_catalogue_and_the_rejections(mosaic, tmp_path):
    img, good, _ = mosaic
    path = tmp_path / "mosaic.fits"
    fits.PrimaryHDU(img).writeto(path)
    out = tmp_path / "harvested"
    res = harvest([path], out, HarvestConfig(psf_fwhm=FWHM, max_rms=None))
    shards = ShardSet(out, verify=True)
    assert len(shards) == len(good) == len(res.stamps)
    assert np.array_equal(shards.gt(np.arange(len(shards))), np.stack(res.stamps))
    rej = json.loads((out / "rejections.json").read_text())
    assert rej["detected"] == res.detected and rej["too_large"] >= 1
    prior = load_prior(out / "catalog.ecsv")  # the catalogue feeds `simulate sersic --prior-from`
    draws = prior.sample(np.random.default_rng(0), 200)
    assert np.all(np.isfinite(draws)) and 1.5 < np.median(draws[:, 3]) < 8
    with pytest.raises(ParameterError, match="exists"):
        harvest([path], out, HarvestConfig(psf_fwhm=FWHM, max_rms=None))
    # the paper's GT criterion (rms after min-max < 0.02) is on by default; a hard cut empties the set
    with pytest.raises(ParameterError, match="no galaxy passed"):
        harvest([path], tmp_path / "none", HarvestConfig(psf_fwhm=FWHM, max_rms=0.0005))
    assert not (tmp_path / "none").exists()


def test_the_command_line_reports_kept_and_rejected_and_names_bad_files(mosaic, tmp_path, capsys):
    from trainer.cli import main

    img, good, _ = mosaic
    path = tmp_path / "field.fits"
    fits.PrimaryHDU(img).writeto(path)
    assert main(["harvest", str(path), "-o", str(tmp_path / "h"), "--no-rms-cut", "--psf-fwhm", str(FWHM)]) == 0
    out = capsys.readouterr().out
    assert f"{len(good)} stamps kept" in out and "too_large 1" in out
    assert main(["harvest", str(tmp_path / "missing.fits"), "-o", str(tmp_path / "h2")]) == 2
    assert "missing.fits" in capsys.readouterr().err
