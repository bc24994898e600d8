"""Issue 11 (2): the PSF of an input from its header, used by every LQ fit, stated in info and FITS."""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from galviewer import open_image
from galviewer.cli import main
from galviewer.core.io.fits import ImageMeta
from galviewer.core.psf.instrument import fwhm_of, instrument_psf, shipped_psfs
from galviewer.errors import ParameterError

DATA = Path(__file__).resolve().parents[1] / "data" / "realdata"


def _centred(k):
    c = k.shape[0] // 2
    return np.unravel_index(int(np.argmax(k)), k.shape) == (c, c)


def test_a_shipped_tinytim_psf_is_resampled_to_the_image_scale():
    assert {"acs_wfc_f814w", "wfc3_ir_f160w", "wfc3_uvis_f606w"} <= set(shipped_psfs())
    p = instrument_psf(ImageMeta(instrument="ACS", detector="WFC", filter="F814W", pixel_scale=0.05))
    assert p.kernel.shape == (25, 25) and p.kernel.sum() == pytest.approx(1.0) and _centred(p.kernel)
    assert "TinyTim acs_wfc_f814w" in p.source and 0.08 < p.fwhm_pix * 0.05 < 0.11
    fine = instrument_psf(ImageMeta(instrument="ACS", detector="WFC", filter="F814W", pixel_scale=0.03))
    assert fine.fwhm_pix == pytest.approx(p.fwhm_pix * 0.05 / 0.03, rel=0.2)  # the same arcsec, more pixels


def test_the_drizzled_wfc3ir_cutouts_get_their_mosaics_empirical_psf():
    with open_image(DATA / "wfc3ir_star.fits") as im:
        p = instrument_psf(im.meta, im.header)
        assert im.meta.instrument == "WFC3" and p.drizzled and "empirical wfc3_ir_f105w" in p.source
        assert 0.15 < p.fwhm_pix * p.pixel_scale < 0.19
        # the star in the image has the PSF's core width
        star = np.asarray(im.data, float)[48 - 6: 48 + 7, 48 - 6: 48 + 7]
        assert fwhm_of(star - np.median(im.data)) == pytest.approx(p.fwhm_pix, rel=0.25)


def test_other_instruments_get_a_stated_gaussian():
    with open_image(DATA / "stis_star.fits") as im:
        p = instrument_psf(im.meta, im.header)
    assert p.source.startswith("Gaussian: diffraction core of STIS/CCD") and 0.06 < p.fwhm_pix * p.pixel_scale < 0.09
    none = instrument_psf(ImageMeta())
    assert "no INSTRUME/DETECTOR/FILTER keywords" in none.source and "0.05″/px assumed" in none.source
    assert none.fwhm_pix == pytest.approx(1.88)
    assert "arcsec" in none.describe(ascii=True) and none.describe(ascii=True).isascii()
    with pytest.raises(ParameterError, match="size"):
        instrument_psf(ImageMeta(), size=24)


def test_measure_fits_lq_with_the_same_psf_with_and_without_a_restoration(tmp_path, tiny_ckpt, capsys):
    path = DATA / "wfc3ir_dwarf.fits"
    assert main(["info", str(path), "--json"]) == 0
    assert "empirical wfc3_ir_f105w" in json.loads(capsys.readouterr().out)["psf"]
    assert main(["measure", str(path), "--xy", "47.5", "47.5", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main(["measure", str(path), "--xy", "47.5", "47.5", "--json", "--restore", "--model", str(tiny_ckpt),
                 "--no-uncertainty"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert "empirical wfc3_ir_f105w" in alone["stamp"]["lq_psf"] == both["stamp"]["lq_psf"]
    assert alone["LQ"]["n"] == pytest.approx(both["LQ"]["n"], rel=1e-6) and alone["LQ"]["ok"]
    out = tmp_path / "o.fits"
    assert main(["restore", str(path), "--xy", "47.5", "47.5", "-o", str(out), "--model", str(tiny_ckpt),
                 "--no-uncertainty"]) == 0
    assert "empirical wfc3_ir_f105w" in fits.getheader(out)["PSFINST"]


def test_measure_states_units_magnitudes_and_arcsec(capsys):
    path = DATA / "wfc3ir_dwarf.fits"
    assert main(["measure", str(path), "--xy", "47.5", "47.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    h = fits.getheader(path)
    zp = -2.5 * np.log10(h["PHOTFLAM"]) - 5 * np.log10(h["PHOTPLAM"]) - 2.408
    assert d["units"]["flux"] == "ELECTRONS/S" and d["units"]["ab_zeropoint"] == pytest.approx(zp)
    assert d["units"]["ab_zeropoint"] == pytest.approx(26.269, abs=1e-3)  # WFC3/IR F105W's published AB zero point
    assert main(["measure", str(path), "--xy", "47.5", "47.5"]) == 0
    text = capsys.readouterr().out
    kron = d["LQ"]["kron_flux"]
    assert f"{zp - 2.5 * np.log10(kron):.5g}" in text and "AB mag" in text and "R50 (Sérsic)" in text
    assert "ELECTRONS/S per px" in text and "counts" not in text.split("LQ PSF")[1]


def test_psf_at_fwhm_meets_the_requested_core_width_and_names_bad_input():
    from galviewer.core.psf.instrument import fine_fwhm, psf_at_fwhm, training_psfs

    names = training_psfs()
    assert len(names) == 12 and "empirical/wfc3_ir_f105w_0.06" in names
    for name in names:
        for f in (2.0, 3.0):
            k = psf_at_fwhm(name, f)
            assert k.shape == (21, 21) and abs(k.sum() - 1) < 1e-9 and not k.flags.writeable
            assert abs(fine_fwhm(k) / f - 1) < 0.13, (name, f, fine_fwhm(k))
    with pytest.raises(ParameterError, match="psf"):
        psf_at_fwhm("acs_wfc_f999w", 2.0)
    with pytest.raises(ParameterError, match="fwhm_pix"):
        psf_at_fwhm(names[0], 0.2)
    with pytest.raises(ParameterError, match="size"):
        psf_at_fwhm(names[0], 2.0, size=20)
