"""Issue 21: one restoration pipeline for every path.  For the same image and position, ``galviewer restore --xy``,
a batch row and the Python call give bit-identical RS, residual, SIGMA and verdict, on every real HST cut-out
and on the demo field (the viewer's click: tests/qt/test_one_pipeline_click.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import galviewer
from galviewer.cli import main
from galviewer.core.measure.detect import Source, detect
from galviewer.core.restore.batch import restore_sources
from galviewer.core.restore.pipeline import DEFAULTS, STEPS, Pipeline, PipelineConfig
from galviewer.errors import ParameterError

DATA = Path(__file__).resolve().parents[1] / "data" / "realdata"
CASES = sorted(p.name for p in DATA.glob("*.fits"))
FITS_CHECKS = {"Q_CHI2": "chi2", "Q_FLUX": "flux", "Q_RMSRAT": "rms", "Q_BORDER": "border", "Q_NEWSRC": "new_sources"}


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline.default(device="cpu")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from galviewer.core.sim.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("demo") / "demo_flt.fits")


def _where(image) -> tuple[float, float]:
    """Where a user would click: the detected source nearest the centre (off-centre by a fraction of a pixel)."""
    ny, nx = image.shape
    found = detect(image)
    s = min(found, key=lambda s: (s.x - nx / 2) ** 2 + (s.y - ny / 2) ** 2)
    return s.x + 0.3, s.y - 0.2


def _same_verdict(a, b) -> None:
    assert a.ok == b.ok and a.summary() == b.summary()
    for k, c in a.checks.items():
        assert c.value == b.checks[k].value or (math.isnan(c.value) and math.isnan(b.checks[k].value)), k


def _check_paths(pipeline: Pipeline, path: Path, ext: str | None, tmp_path: Path) -> None:
    with galviewer.open_image(path, ext) as image:
        x, y = _where(image)
        python = galviewer.restore_at(image, x, y)
        row = restore_sources(pipeline, image, [Source(1, x, y, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0)])[0]
    out = tmp_path / "cli.fits"
    args = ["restore", str(path), "--xy", str(x), str(y), "-o", str(out)] + (["--ext", ext] if ext else [])
    assert main(args) == 0
    batch = row.restoration
    for r in (python, batch):
        assert r.data.shape == (DEFAULTS.size, DEFAULTS.size) and r.meta["context"] == DEFAULTS.context
        assert r.meta["pipeline"] == pipeline.steps(image=image)
    assert np.array_equal(python.data, batch.data)
    assert np.array_equal(python.residual, batch.residual)
    assert np.array_equal(python.sigma, batch.sigma)
    _same_verdict(python.meta["verdict"], row.verdict)
    with fits.open(out) as hdul:
        assert np.array_equal(hdul[0].data, python.data)
        assert np.array_equal(hdul["RESID"].data, python.residual)
        assert np.array_equal(hdul["SIGMA"].data, python.sigma)
        h = hdul[0].header
        v = python.meta["verdict"]
        assert h["QUALITY"] == ("ok" if v.ok else "FAIL")
        for key, name in FITS_CHECKS.items():
            if key in h:
                assert h[key] == v.checks[name].value, key
        steps = [h[f"STEP{k}"] for k in range(1, len(python.meta["pipeline"]) + 1)]
        assert steps == [s.encode("ascii", "replace").decode() for s in python.meta["pipeline"]]


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_cli_batch_and_python_are_bit_identical_on_real_data(pipeline, name, tmp_path):
    _check_paths(pipeline, DATA / name, None, tmp_path)


@pytest.mark.slow
def test_cli_batch_and_python_are_bit_identical_on_the_demo(pipeline, demo, tmp_path):
    _check_paths(pipeline, demo, "SCI,1", tmp_path)


def test_the_steps_are_named_in_order_with_their_parameters(pipeline):
    steps = pipeline.steps()
    assert len(STEPS) == 13 and STEPS[0] == "cutout" and STEPS[-1] == "verdict"
    assert [s.split()[0] for s in steps] == list(STEPS)
    assert steps[0] == f"cutout size=64 context={DEFAULTS.context} refine=True"
    assert steps[4] == "network flips=8" and steps[-2] == f"crop {DEFAULTS.context} px"
    one = pipeline.with_config(uncertainty=False, context=0, anchor=0)
    assert one.steps()[4] == "network flips=1" and one.steps()[6] == "anchor off"
    star = pipeline.with_config(point_source=True)
    assert star.steps()[2].startswith("point_source on") and star.steps(region=True)[2] == "point_source off"
    assert pipeline.steps()[2].startswith("point_source auto")
    assert pipeline.steps()[9] == "repair off" and pipeline.with_config(repair=True).steps()[9].startswith("repair on")


def test_one_default_changes_every_path(monkeypatch, tmp_path):
    """The defaults live in one place: the Restorer, the CLI and the viewer's toolbar read them from DEFAULTS."""
    from galviewer.cli.parser import build_parser
    from galviewer.core.restore.engine import Restorer

    args = build_parser().parse_args(["restore", "x.fits", "--xy", "1", "2", "-o", "o.fits"])
    assert (args.size, args.context, args.anchor) == (DEFAULTS.size, DEFAULTS.context, DEFAULTS.anchor)
    assert args.clean_crs is DEFAULTS.clean_cosmic_rays and args.no_uncertainty is not DEFAULTS.uncertainty
    r = Restorer.from_pretrained(device="cpu")
    assert (r.uncertainty, r.anchor, r.consistency, r.point_source) == (
        DEFAULTS.uncertainty, DEFAULTS.anchor, DEFAULTS.consistency, DEFAULTS.point_source)


@pytest.mark.parametrize(("field", "value"), [("size", 4), ("context", -1), ("anchor", 100.0), ("rescale", "x")])
def test_a_bad_setting_is_refused_by_name(field, value):
    with pytest.raises(ParameterError, match=field):
        PipelineConfig(**{field: value})
    with pytest.raises(ParameterError, match="margin"):
        DEFAULTS.replace(margin=3)
