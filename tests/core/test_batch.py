import math
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galviewer.core.io.fits import open_image
from galviewer.core.measure.detect import Source, detect
from galviewer.core.restore.batch import export_batch, restore_sources
from galviewer.core.restore.engine import Restorer
from galviewer.core.restore.pipeline import Pipeline, PipelineConfig
from galviewer.errors import OutputExistsError, ParameterError, RestoreCancelled
from tests.helpers import SOURCES, write_flt


@pytest.fixture
def flt(tmp_path):
    return write_flt(tmp_path / "j8pu0ypaq_flt.fits")


def test_detect_finds_the_injected_galaxies_brightest_first(flt):
    with open_image(flt, "SCI,1") as image:
        sources = detect(image, nsigma=3.0)
    truth = sorted(SOURCES, key=lambda s: -s[2])
    assert len(sources) == len(SOURCES)
    for s, (x, y, _) in zip(sources, truth, strict=True):
        assert math.hypot(s.x - x, s.y - y) < 0.5
        assert s.snr > 20
    assert [s.flux for s in sources] == sorted((s.flux for s in sources), reverse=True)
    with pytest.raises(ParameterError, match="nsigma"):
        detect(image.data, nsigma=0)
    assert detect(np.random.default_rng(1).normal(0, 1, (128, 128)), nsigma=6.0) == []


def test_restore_sources_measures_each_and_keeps_failures(flt, tiny_ckpt):
    pipe = Pipeline(Restorer.from_file(tiny_ckpt, "cpu"), PipelineConfig(uncertainty=False))
    with open_image(flt, "SCI,1") as image:
        sources = detect(image)
        ghost = Source(999, 5000.0, 5000.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0)  # off the image
        steps = []
        res = restore_sources(pipe, image, [*sources, ghost],
                              progress=lambda d, t: steps.append((d, t)))
        assert steps[-1] == (8, 8)
        ok, bad = res[:-1], res[-1]
        assert "outside" in bad.error and bad.restoration is None
        for r in ok:
            row = r.row()
            assert r.error == "" and r.restoration.data.shape == (64, 64)
            assert math.isfinite(row["n_LQ"]) and math.isfinite(row["kron_flux_RS"])
            assert abs(row["x_stamp"] - r.source.x) < 1
            # the status is the quality verdict, never a bare "ok": the random test network fails some checks
            assert row["status"] == r.verdict.summary() and row["quality_ok"] == r.verdict.ok
            assert row["status"].startswith("ok (χ²") if r.verdict.ok else not row["status"].startswith("ok")
            assert r.restoration.meta["verdict"] is r.verdict
        with pytest.raises(RestoreCancelled):
            restore_sources(pipe, image, sources, cancel=lambda: True)


def test_a_batch_restores_each_source_with_the_context_margin_of_a_click(flt, tiny_ckpt):
    """Issue 11 (4), issue 21: a batch restores every source as a click does — a cut-out 2·8 px larger, its
    central stamp kept, bit for bit the pipeline's run at that position; 0 turns the margin off."""
    from galviewer.core.io.stamps import DEFAULT_CONTEXT

    pipe = Pipeline(Restorer.from_file(tiny_ckpt, "cpu"), PipelineConfig(uncertainty=False))
    with open_image(flt, "SCI,1") as image:
        sources = detect(image)[:2]
        framed = restore_sources(pipe, image, sources, measure=False)
        plain = restore_sources(pipe.with_config(context=0), image, sources, measure=False)
        for f, p in zip(framed, plain, strict=True):
            assert f.restoration.meta["context"] == DEFAULT_CONTEXT == 8 and "context" not in p.restoration.meta
            assert f.stamp.lq.shape == f.restoration.data.shape == (64, 64)
            assert f.stamp.origin == p.stamp.origin and np.array_equal(f.stamp.padded, p.stamp.padded)
            real = ~f.stamp.padded  # (pixels outside the image are filled with noise drawn for each cut-out)
            assert np.array_equal(f.stamp.lq[real], p.stamp.lq[real])
            one = pipe.run(image, f.source.x, f.source.y, judge=False)
            scale = float(np.std(one.data))
            assert np.array_equal(f.restoration.data, one.data) and np.array_equal(f.restoration.residual,
                                                                                    one.residual)
            assert np.abs(f.restoration.data - p.restoration.data).max() > 0.01 * scale  # the margin matters
        with pytest.raises(ParameterError, match="context"):
            restore_sources(pipe.with_config(context=-1), image, sources)


def test_export_writes_stamps_and_a_catalogue_and_never_clobbers(flt, tiny_ckpt, tmp_path):
    pipe = Pipeline(Restorer.from_file(tiny_ckpt, "cpu"), PipelineConfig(uncertainty=False))
    with open_image(flt, "SCI,1") as image:
        res = restore_sources(pipe, image, detect(image), measure=True)
        out = tmp_path / "batch"
        files = export_batch(out, res, stem="j8pu0ypaq", wcs=image.wcs)
    assert len(files) == 4 and files[-1].name == "j8pu0ypaq_catalog.ecsv"
    table = Table.read(files[-1])
    assert len(table) == 3 and {"ra", "dec", "n_RS", "flux_conservation"} <= set(table.colnames)
    assert str(table["ra"].unit) == "deg"
    assert str(table["kron_flux_LQ"].unit) == "electron" and "ELECTRONS" in table["iso_flux_RS"].description
    # issue 20: every measured column has its unit and a description; fits carry their flags
    for name in table.colnames:
        assert table[name].description, name
    assert str(table["r50_RS"].unit) == "pix" and str(table["sersic_flux_err_LQ"].unit) == "electron"
    assert {"sersic_flag_LQ", "sersic_flags_RS", "kron_mag_LQ", "mu_r50_RS", "psf_spill"} <= set(table.colnames)
    for row, r in zip(table, res, strict=True):
        assert row["sersic_flag_RS"] == r.measurements.fits["RS"].flag_bits
        assert (row["sersic_flag_RS"] == 0) == (not str(row["sersic_flags_RS"]).strip("- "))
    with fits.open(files[0]) as hdul:
        assert hdul["RS"].data.shape == (64, 64) and hdul["LQ"].data.shape == (64, 64)
    mtimes = [os.stat(f).st_mtime_ns for f in files]
    with pytest.raises(OutputExistsError, match="nothing was written"):
        export_batch(out, res, stem="j8pu0ypaq")
    assert [os.stat(f).st_mtime_ns for f in files] == mtimes
    assert len(export_batch(out, res, stem="j8pu0ypaq", overwrite=True)) == 4
    with pytest.raises(ParameterError, match="nothing to export"):
        export_batch(out, [], stem="x")


def test_cli_detect_writes_a_catalogue_that_restore_reads(flt, tmp_path, tiny_ckpt, capsys):
    from galviewer.cli import main

    cat = tmp_path / "cat.ecsv"
    assert main(["detect", str(flt), "-o", str(cat)]) == 0
    table = Table.read(cat)
    assert len(table) == len(SOURCES) and {"x", "y", "ra", "dec", "snr"} <= set(table.colnames)
    assert main(["detect", str(flt), "-o", str(cat)]) == 2  # never overwrites without --overwrite
    assert "exists" in capsys.readouterr().err
    out = tmp_path / "stamps"
    assert main(["restore", str(flt), "--catalog", str(cat), "-o", str(out), "--model", str(tiny_ckpt),
                 "--device", "cpu", "--no-uncertainty"]) == 0
    assert len(list(out.glob("*.fits"))) == len(SOURCES)
