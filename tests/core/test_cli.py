import json
import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from galviewer import open_image
from galviewer.cli import main
from galviewer.core.io.stamps import DEFAULT_CONTEXT
from tests.helpers import SOURCES, write_flt


@pytest.fixture
def flt(tmp_path):
    return write_flt(tmp_path / "j8pu0ypaq_flt.fits")


def test_restore_writes_a_valid_stamp_with_the_right_wcs(flt, tmp_path, tiny_ckpt, capsys):
    out = tmp_path / "stamp.fits"
    x, y, _ = SOURCES[0]
    rc = main(["restore", str(flt), "--xy", str(x + 1.5), str(y - 1.0), "--ext", "SCI,2", "--model", str(tiny_ckpt),
               "--device", "cpu", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == ["RS", "LQ", "SIGMA", "RESID", "MASK"]
        h = hdul[0].header
        assert hdul[0].data.shape == (64, 64) and h["BUNIT"] == "ELECTRONS"
        assert h["MODEL"] == "tiny-random" and len(h["MODELSHA"]) == 64
        assert h["SRCFILE"] == flt.name and h["SRCEXT"] == "SCI,2"
        assert np.isfinite(h["RS_SCALE"]) and np.isfinite(h["RS_OFFS"])
        assert h["INSTRUME"] == "ACS" and h["FILTER"] == "F606W"
        stamp_wcs = WCS(h)
        sx, sy = h["XCENTER"] - h["XORIGIN"], h["YCENTER"] - h["YORIGIN"]
        sky_stamp = stamp_wcs.all_pix2world(sx, sy, 0)
        assert np.allclose(sky_stamp, (h["RA_CEN"], h["DEC_CEN"]), atol=1e-10)
        assert np.array_equal(hdul["LQ"].data.shape, (64, 64))
    with open_image(flt, "SCI,2") as im:
        sky_parent = im.wcs.all_pix2world(h["XCENTER"], h["YCENTER"], 0)
    assert np.allclose(sky_stamp, sky_parent, atol=1e-10)  # same sky position (SIP included)
    assert abs(h["XCENTER"] - x) < 0.3 and abs(h["YCENTER"] - y) < 0.3


def test_never_overwrites_without_flag(flt, tmp_path, tiny_ckpt, capsys):
    out = tmp_path / "stamp.fits"
    out.write_bytes(b"precious")
    args = ["restore", str(flt), "--xy", "120", "80", "--model", str(tiny_ckpt), "-o", str(out)]
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main([*args, "--overwrite", "--no-uncertainty"]) == 0
    with fits.open(out) as hdul:
        assert "SIGMA" not in [h.name for h in hdul]


def test_catalog_ecsv_and_ds9_regions(flt, tmp_path, tiny_ckpt, capsys):
    cat = tmp_path / "cat.ecsv"
    Table({"id": [7, 8], "x": [s[0] + 1 for s in SOURCES[:2]], "y": [s[1] + 1 for s in SOURCES[:2]]}).write(cat)
    outdir = tmp_path / "out"
    rc = main(["restore", str(flt), "--catalog", str(cat), "--origin", "1", "--model", str(tiny_ckpt),
               "--no-uncertainty", "-o", str(outdir)])
    assert rc == 0, capsys.readouterr().err
    files = sorted(p.name for p in outdir.iterdir())
    # integer ids zero-padded as the viewer's batch export names them, and a result catalogue
    assert files == ["j8pu0ypaq_flt_00007.fits", "j8pu0ypaq_flt_00008.fits", "j8pu0ypaq_flt_restored.ecsv"]
    with fits.open(outdir / files[0]) as hdul:
        assert abs(hdul[0].header["XCENTER"] - SOURCES[0][0]) < 0.3
    done = Table.read(outdir / files[2])
    assert list(done["label"]) == ["7", "8"] and list(done["file"]) == files[:2]
    assert abs(done["x"][0] - SOURCES[0][0]) < 0.3 and done["x_in"][0] == pytest.approx(SOURCES[0][0])
    assert all(st.startswith("ok (") == ok for st, ok in zip(done["status"], done["quality_ok"], strict=True))
    reg = tmp_path / "src.reg"
    # DS9 image coordinates are 1-based.
    reg.write_text("# Region file format: DS9\nimage\n"
                   f"circle({SOURCES[2][0] + 1},{SOURCES[2][1] + 1},5) # text={{g3}}\n")
    outdir2 = tmp_path / "out2"
    assert main(["restore", str(flt), "--catalog", str(reg), "--model", str(tiny_ckpt), "--no-uncertainty",
                 "-o", str(outdir2)]) == 0
    only, summary = sorted(outdir2.iterdir())
    assert only.name == "j8pu0ypaq_flt_g3.fits" and summary.name == "j8pu0ypaq_flt_restored.ecsv"
    with fits.open(only) as hdul:
        assert abs(hdul[0].header["XCENTER"] - SOURCES[2][0]) < 0.3
    # Existing outputs are refused as a whole before anything is written.
    assert main(["restore", str(flt), "--catalog", str(reg), "--model", str(tiny_ckpt), "-o", str(outdir2)]) == 2


def test_errors_name_the_file(tmp_path, tiny_ckpt, capsys):
    missing = tmp_path / "nope.fits"
    assert main(["restore", str(missing), "--xy", "1", "1", "--model", str(tiny_ckpt), "-o",
                 str(tmp_path / "o.fits")]) == 2
    assert str(missing) in capsys.readouterr().err
    flt = write_flt(tmp_path / "a_flt.fits")
    assert main(["restore", str(flt), "--xy", "1", "1", "-o", str(tmp_path / "o.fits"), "--model",
                 str(tmp_path / "none.safetensors")]) == 2
    assert "none.safetensors" in capsys.readouterr().err
    assert main(["restore", str(flt), "--xy", "5000", "1", "--model", str(tiny_ckpt), "-o",
                 str(tmp_path / "o.fits")]) == 2
    assert "outside" in capsys.readouterr().err
    assert not (tmp_path / "o.fits").exists()


def test_info_json(flt, capsys):
    assert main(["info", str(flt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "FLT" and info["instrument"] == "ACS" and info["shape"] == [200, 300]
    assert info["images"][0].startswith("SCI,1") and info["bad_pixels"] == 12


def test_help_works_without_a_display():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    for cmd in (["galviewer", "--help"], ["galviewer", "restore", "--help"], ["galviewer-train", "--help"]):
        pkg = "trainer" if "train" in cmd[0] else "galviewer"
        code = f"import sys; from {pkg}.cli import main; sys.argv={cmd!r}; main()"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "usage:" in proc.stdout


def test_measure_prints_the_table_and_json(flt, tiny_ckpt, capsys):
    x, y, _ = SOURCES[0]
    assert main(["measure", str(flt), "--xy", str(x), str(y)]) == 0
    out = capsys.readouterr().out
    assert "Sérsic n" in out and "Kron flux" in out and "RS" not in out.split("\n")[1]
    assert main(["measure", str(flt), "--xy", str(x), str(y), "--restore", "--model", str(tiny_ckpt),
                 "--device", "cpu", "--no-uncertainty", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["photometry_ok"] and d["LQ"]["kron_flux"] > 0 and d["RS"]["kron_flux"] is not None
    assert np.isfinite(d["residual_chi2"]) and np.isfinite(d["flux_conservation"])
    assert d["stamp"]["x_center"] == pytest.approx(x, abs=1.0)
    # --restore measures what `restore --xy` writes: the same 8-px margin by default, the same verdict
    assert main(["restore", str(flt), "--xy", str(x), str(y), "--model", str(tiny_ckpt), "--device", "cpu",
                 "--no-uncertainty", "-o", str(flt.with_name("m.fits"))]) == 0
    capsys.readouterr()
    assert fits.getheader(flt.with_name("m.fits"))["Q_CHI2"] == pytest.approx(d["quality"]["checks"]["chi2"]["value"],
                                                                              rel=1e-4)
    assert main(["measure", str(flt), "--xy", str(x), str(y), "--restore", "--model", str(tiny_ckpt),
                 "--device", "cpu", "--no-uncertainty", "--json", "--context", "0"]) == 0
    d0 = json.loads(capsys.readouterr().out)
    assert d0["residual_chi2"] != pytest.approx(d["residual_chi2"], rel=1e-3)  # the margin is applied
    assert main(["measure", str(flt), "--xy", str(x), str(y), "--psf-fwhm", "0"]) == 2
    assert "--psf-fwhm" in capsys.readouterr().err


def test_sextractor_columns_are_one_based_and_dq_bits_can_be_ignored(flt, tmp_path, tiny_ckpt, capsys):
    cat = tmp_path / "se.fits"
    Table({"NUMBER": [3], "X_IMAGE": [SOURCES[0][0] + 1], "Y_IMAGE": [SOURCES[0][1] + 1]}).write(cat)
    out = tmp_path / "o"
    assert main(["restore", str(flt), "--catalog", str(cat), "--model", str(tiny_ckpt), "--no-uncertainty",
                 "-o", str(out)]) == 0
    done = Table.read(out / "j8pu0ypaq_flt_restored.ecsv")
    assert abs(done["x"][0] - SOURCES[0][0]) < 0.3 and abs(done["y"][0] - SOURCES[0][1]) < 0.3
    capsys.readouterr()
    counts = []
    for bits in ("0", "64"):
        assert main(["info", str(flt), "--json", "--dq-ignore", bits]) == 0
        counts.append(json.loads(capsys.readouterr().out)["bad_pixels"])
    assert counts[0] - counts[1] == 1  # the one warm pixel (DQ 64) of chip 1 is kept
    assert main(["info", str(flt), "--dq-ignore", "-1"]) == 2
    assert "--dq-ignore" in capsys.readouterr().err


def test_the_version_is_the_packages(capsys):
    from importlib.metadata import version

    import galviewer

    with pytest.raises(SystemExit):
        main(["--version"])
    printed = capsys.readouterr().out.strip()
    assert printed == f"galviewer {galviewer.__version__}" == f"galviewer {version('galviewer')}"


def test_restore_figure_is_labelled_and_never_clobbers(flt, tmp_path, tiny_ckpt, capsys):
    """Issue 12 item 7: a labelled figure (file, position, model, units, colour bars) from the CLI and the app."""
    from galviewer import Restorer, cutout
    from galviewer.core.restore.figure import _lines, restoration_figure
    from galviewer.core.restore.verdict import judge
    from galviewer.errors import ExportError, OutputExistsError

    x, y, _ = SOURCES[0]
    args = ["restore", str(flt), "--xy", str(x), str(y), "--model", str(tiny_ckpt), "--device", "cpu",
            "-o", str(tmp_path / "s.fits"), "--figure", str(tmp_path / "s.pdf")]
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "s.pdf").read_bytes()[:5] == b"%PDF-" and "s.pdf: figure" in capsys.readouterr().out
    assert main([*args[:-3], str(tmp_path / "t.fits"), "--figure", str(tmp_path / "s.gif")]) == 2
    assert "--figure" in capsys.readouterr().err and not (tmp_path / "t.fits").exists()
    with open_image(flt) as im:
        r = Restorer.from_file(tiny_ckpt, "cpu").restore(cutout(im, x, y, 64))
    _, verdict = judge(r)
    head, quality, level = _lines(r, verdict)
    assert flt.name in head[0] and "SCI,1" in head[0] and f"x={r.stamp.center[0]:.2f}" in head[0]
    assert "RA " in head[0] and "Dec " in head[0]
    assert "tiny-random" in head[1] and r.meta["model_sha256"][:12] in head[1]
    start = {"ok": "quality ok", "caution": "QUALITY CAUTION (the data are explained)", "fail": "QUALITY FAILS"}
    assert quality.startswith(start[verdict.level]) and level == verdict.level
    out = restoration_figure(tmp_path / "f.svg", r, verdict=verdict)
    assert b"<svg" in out.read_bytes()[:400]
    with pytest.raises(OutputExistsError):
        restoration_figure(out, r)
    with pytest.raises(ExportError, match="format"):
        restoration_figure(tmp_path / "f.tiff", r)


def test_restore_with_a_context_margin_keeps_the_stamp_and_its_wcs(flt, tmp_path, tiny_ckpt, capsys):
    """Issue 11 item 4: `--context M` restores a cut-out M px larger on every side and keeps the central stamp:
    same size, the same parent pixels and sky, the margin recorded; 8 px unless told (0 for none), for one
    source and for a catalogue."""
    x, y, _ = SOURCES[0]
    base = ["restore", str(flt), "--xy", str(x), str(y), "--model", str(tiny_ckpt), "--device", "cpu"]
    assert main([*base, "--context", "0", "-o", str(tmp_path / "a.fits")]) == 0
    assert main([*base, "--context", "16", "-o", str(tmp_path / "b.fits")]) == 0, capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "d.fits")]) == 0
    assert fits.getheader(tmp_path / "d.fits")["CONTEXT"] == DEFAULT_CONTEXT == 8
    cat = tmp_path / "one.ecsv"
    Table({"x": [x], "y": [y]}).write(cat)
    assert main(["restore", str(flt), "--catalog", str(cat), "--model", str(tiny_ckpt), "--device", "cpu",
                 "--context", "16", "-o", str(tmp_path / "cat")]) == 0, capsys.readouterr().err
    (stamp,) = (tmp_path / "cat").glob("*.fits")
    with fits.open(tmp_path / "a.fits") as a, fits.open(tmp_path / "b.fits") as b, fits.open(stamp) as c:
        ha, hb = a[0].header, b[0].header
        assert b[0].data.shape == (64, 64) and hb["CONTEXT"] == 16 and "CONTEXT" not in ha
        assert c[0].data.shape == (64, 64) and c[0].header["CONTEXT"] == 16
        assert np.allclose(c[0].data, b[0].data)  # the catalogue restores a source as --xy does
        assert (hb["XORIGIN"], hb["YORIGIN"]) == (ha["XORIGIN"], ha["YORIGIN"])
        assert np.array_equal(a["LQ"].data, b["LQ"].data)  # the same input pixels
        assert np.allclose(WCS(ha).all_pix2world(10, 20, 0), WCS(hb).all_pix2world(10, 20, 0), rtol=0, atol=1e-10)
        assert b["RESID"].data.shape == (64, 64) and np.isfinite(b["RESID"].data).all()
    assert main([*base, "--context", "-1", "-o", str(tmp_path / "c.fits")]) == 2
    assert "--context" in capsys.readouterr().err
