import itertools

import numpy as np
import pytest

from galviewer import Restorer, open_image
from galviewer.core.io.mosaic import mosaic_possible, open_mosaic
from galviewer.core.measure.detect import detect, detect_mosaic
from galviewer.core.restore.batch import restore_mosaic_sources
from galviewer.core.restore.pipeline import Pipeline, PipelineConfig
from galviewer.errors import ImageLoadError
from tests.helpers import SOURCES, write_flt, write_two_chip_flt


def test_chips_are_placed_by_their_wcs_and_positions_go_back_to_their_chip(tmp_path):
    path = write_two_chip_flt(tmp_path / "two_flt.fits", gap=20)
    m = open_mosaic(path)
    try:
        ny = m.chips[0].data.shape[0]
        assert m.exts == ["SCI,1", "SCI,2"]
        # SCI,2 sits 200 + 20 px above SCI,1; the chips of this file differ by 1° of rotation, which turns the
        # 220-px lever by 3.8 px in x
        dx, dy = np.subtract(m.offsets[1], m.offsets[0])
        assert abs(dy - (ny + 20)) <= 1 and abs(dx + 220 * np.sin(np.radians(1.0))) <= 1
        assert m.data.shape[0] >= 2 * ny + 18 and np.isnan(m.data[ny + 5 + m.offsets[0][1], 150])  # the gap
        # every canvas pixel shows its chip's value, and a canvas position goes back to the chip
        x, y, _ = SOURCES[1]
        cx, cy = m.to_canvas("SCI,2", x, y)
        k, chip, bx, by = m.locate(cx, cy)
        assert k == 1 and (bx, by) == pytest.approx((x, y))
        assert m.data[round(cy), round(cx)] == chip.data[round(y), round(x)]
        assert m.pixel_to_world(cx, cy) == pytest.approx(chip.pixel_to_world(x, y))
        in_gap = (150, m.offsets[0][1] + ny + 5)
        assert m.locate(*in_gap) is None and np.isnan(m.pixel_to_world(*in_gap)[0])
        # detection runs on each chip: the same sources, on the canvas, brightest first, ids renumbered
        merged = detect_mosaic(m)
        per_chip = [detect(c) for c in m.chips]
        assert len(merged) == sum(len(d) for d in per_chip)
        assert [s.id for s in merged] == list(range(1, len(merged) + 1))
        assert all(a.flux >= b.flux for a, b in itertools.pairwise(merged))
        top = per_chip[1][0]
        assert any(abs(s.x - (top.x + m.offsets[1][0])) < 1e-9 and abs(s.y - (top.y + m.offsets[1][1])) < 1e-9
                   for s in merged)
    finally:
        m.close()


def test_batch_restores_each_source_from_its_own_chip(tmp_path, tiny_ckpt):
    path = write_two_chip_flt(tmp_path / "two_flt.fits")
    m = open_mosaic(path)
    try:
        sources = list(detect_mosaic(m))[:4]
        gap = type(sources[0])(id=99, x=150.0, y=m.offsets[0][1] + 205.0, flux=1, flux_err=1, area=1, a=1, b=1,
                               theta_deg=0)
        res = restore_mosaic_sources(Pipeline(Restorer.from_file(tiny_ckpt, "cpu"), PipelineConfig(size=32)), m,
                                     [*sources, gap], measure=False)
        assert [r.source for r in res] == [*sources, gap]
        assert "between the chips" in res[-1].error and res[-1].restoration is None
        for s, r in zip(sources, res, strict=False):
            k, _, cx, cy = m.locate(s.x, s.y)
            assert r.stamp.ext == m.exts[k] and r.stamp.center == pytest.approx((cx, cy), abs=1.0)
            with open_image(path, m.exts[k]) as im:  # the stamp is the chip's own pixels, WCS and all
                ox, oy = r.stamp.origin
                assert np.array_equal(r.stamp.lq[5, 5], im.data[oy + 5, ox + 5])
    finally:
        m.close()


def test_repeated_exposures_and_single_chips_are_refused_by_name(tmp_path):
    same = write_flt(tmp_path / "same_flt.fits")  # both SCI cover the same sky (as a STIS CR-SPLIT)
    assert not mosaic_possible(same) and mosaic_possible(write_two_chip_flt(tmp_path / "two_flt.fits"))
    with pytest.raises(ImageLoadError, match="same sky"):
        open_mosaic(same)
    from astropy.io import fits

    one = tmp_path / "one.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((20, 20), np.float32), name="SCI")]).writeto(one)
    with pytest.raises(ImageLoadError, match="two or more chips"):
        open_mosaic(one)
