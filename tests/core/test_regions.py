import math

import numpy as np
import pytest

from galviewer.core.io.fits import open_image
from galviewer.core.io.regions import PolygonRegion, Region, read_regions, region_stamp, write_regions
from galviewer.core.restore.engine import Restorer
from galviewer.core.restore.pipeline import Pipeline, PipelineConfig
from galviewer.core.restore.regions import restore_region
from galviewer.errors import ImageLoadError, OutputExistsError, ParameterError, RestoreCancelled
from tests.helpers import SOURCES, write_flt


def test_footprints_hold_the_area_of_the_shape():
    e = Region("ellipse", 100.0, 80.0, 40.0, 20.0, 30.0)
    _, _, mask = e.footprint((200, 300))
    assert abs(mask.sum() - math.pi * 20 * 10) / (math.pi * 200) < 0.02
    r = Region("rectangle", 50.3, 60.0, 30.0, 10.0, 45.0)
    _, _, m = r.footprint((200, 300))
    assert abs(m.sum() - 300) / 300 < 0.03
    # the box of a 45° rectangle is (30 + 10)/√2 wide
    assert abs(m.shape[1] - 40 / math.sqrt(2)) <= 2


def test_ds9_files_read_shapes_in_0_based_pixels_and_skip_the_rest(tmp_path):
    reg = tmp_path / "mixed.reg"
    reg.write_text("# Region file format: DS9\nimage\nbox(101,51,30,20,0) # text={knot}\n"
                   "ellipse(201,81,10,5,30)\ncircle(51,51,8)\npolygon(11,11,51,13,41,61)\npoint(5,5)\n"
                   "fk5\ncircle(150.1,2.2,1\")\n")
    regions, skipped = read_regions(reg)
    assert [r.shape for r in regions] == ["rectangle", "ellipse", "ellipse", "polygon"]
    box, ell, circ, poly = regions
    assert (box.x, box.y, box.width, box.height, box.label) == (100.0, 50.0, 30.0, 20.0, "knot")
    assert (ell.x, ell.y, ell.width, ell.height) == (200.0, 80.0, 20.0, 10.0) and ell.angle == pytest.approx(30)
    assert circ.width == circ.height == 16.0
    assert poly.vertices == ((10.0, 10.0), (50.0, 12.0), (40.0, 60.0))
    _, _, tri = poly.footprint((200, 300))
    assert abs(tri.sum() - 970) < 25  # the triangle's area, 970 px²
    assert len(skipped) == 2
    assert any("point" in s for s in skipped) and any("celestial WCS" in s for s in skipped)


def test_regions_round_trip_in_image_and_sky_frames_and_never_clobber(tmp_path):
    flt = write_flt(tmp_path / "x_flt.fits")
    with open_image(flt, "SCI,1") as image:
        regs = [Region("ellipse", 120.3, 80.7, 24.0, 12.0, 20.0), Region("rectangle", 40.0, 150.0, 16.0, 30.0),
                PolygonRegion(((200.0, 20.0), (260.0, 30.0), (230.0, 90.0)))]
        p = write_regions(tmp_path / "a.reg", regs)
        back, skipped = read_regions(p)
        assert not skipped
        for a, b in zip(regs[:2], back[:2], strict=True):
            assert (a.shape, a.x, a.y, a.width, a.height) == (b.shape, b.x, b.y, b.width, b.height)
        assert back[2] == regs[2]
        s = write_regions(tmp_path / "sky.reg", regs, wcs=image.wcs)
        assert "ellipse(" in s.read_text() and "image" not in s.read_text()
        back, _ = read_regions(s, image.wcs)
        for a, b in zip(regs[:2], back[:2], strict=True):
            assert abs(a.x - b.x) < 1e-3 and abs(a.y - b.y) < 1e-3 and abs(a.width - b.width) < 1e-2
        assert np.allclose(back[2].vertices, regs[2].vertices, atol=1e-3)
        before = p.read_text()
        with pytest.raises(OutputExistsError):
            write_regions(p, regs[:1])
        assert p.read_text() == before


def test_bad_region_files_and_regions_raise_named_errors(tmp_path):
    with pytest.raises(ImageLoadError, match=r"nothere\.reg"):
        read_regions(tmp_path / "nothere.reg")
    junk = tmp_path / "junk.reg"
    junk.write_text("image\nbox(1,2\n")
    with pytest.raises(ImageLoadError, match=r"junk\.reg"):
        read_regions(junk)
    with pytest.raises(ParameterError, match="width"):
        Region("rectangle", 1.0, 1.0, 0.0, 5.0)
    with pytest.raises(ParameterError, match="shape"):
        Region("polygon", 1.0, 1.0, 5.0, 5.0)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="no pixel"):
        Region("rectangle", -100.0, -100.0, 10.0, 10.0).footprint((50, 50))
    with pytest.raises(ParameterError, match="regions"):
        write_regions(tmp_path / "empty.reg", [])


def test_a_region_over_the_edge_is_padded_and_its_mask_follows_the_image():
    data = np.random.default_rng(0).normal(10.0, 1.0, (100, 120)).astype(np.float32)
    reg = Region("rectangle", 5.5, 50.5, 40.0, 20.0)  # pixel centres -14…25: 14 columns hang off the left edge
    stamp, inside = region_stamp(data, reg)
    assert stamp.lq.shape == (20, 40) and stamp.origin == (-14, 41)
    assert stamp.padded[:, :14].all() and not stamp.padded[:, 14:].any()
    assert inside.sum() == 20 * 26 and not inside[:, :14].any()
    corner = Region("ellipse", 1.0, 1.0, 30.0, 30.0)  # centre of the box clamps onto the image
    stamp, inside = region_stamp(data, corner)
    assert inside.any() and not (inside & stamp.padded).any()
    ys, xs = np.nonzero(~stamp.padded)
    ox, oy = stamp.origin
    assert np.array_equal(stamp.lq[ys, xs], data[ys + oy, xs + ox])


def test_restore_region_tiles_reports_progress_and_cancels(tiny_ckpt, tmp_path):
    flt = write_flt(tmp_path / "x_flt.fits", shape=(300, 400))
    restorer = Pipeline(Restorer.from_file(tiny_ckpt, "cpu", memory_budget_mb=2.0),  # forces ~100² tiles
                        PipelineConfig(uncertainty=False))
    reg = Region("ellipse", 150.0, 120.0, 260.0, 200.0, 10.0)
    with open_image(flt, "SCI,1") as image:
        steps = []
        rr = restore_region(restorer, image, reg, progress=lambda d, t: steps.append((d, t)))
        r = rr.restoration
        assert r.data.shape == rr.inside.shape == r.stamp.lq.shape
        assert abs(rr.inside.sum() - math.pi * 130 * 100) / (math.pi * 13000) < 0.02
        assert len(steps) >= 4 and steps[-1][0] == steps[-1][1]  # tiled
        assert r.meta["rescale"] == "lstsq" and r.meta["region"].startswith("ellipse(151")
        x0, y0 = r.stamp.origin
        sx, sy, _ = SOURCES[0]
        # the region's restoration agrees with the input where the model is asked to: residual ≪ signal
        s = rr.summary()
        assert s["pixels"] == (rr.inside & ~r.stamp.bad).sum() and math.isfinite(s["conservation"])
        assert abs(np.median(r.residual[rr.inside])) < 3 * s["noise_lq"]
        assert r.data[round(sy) - y0, round(sx) - x0] > np.median(r.data) + 5 * s["noise_lq"]
        with pytest.raises(RestoreCancelled):
            restore_region(restorer, image, reg, cancel=lambda: len(steps) > 0)


def test_a_region_is_restored_with_the_context_margin_and_cropped_to_its_box(tiny_ckpt, tmp_path):
    """Issue 11 (4): a region's bounding box is restored 8 px larger on every side, as a click, and cropped back:
    the same box, origin and in-region mask as without a margin; the network's edges fall outside it."""
    flt = write_flt(tmp_path / "x_flt.fits", shape=(300, 400))
    restorer = Pipeline(Restorer.from_file(tiny_ckpt, "cpu"), PipelineConfig(uncertainty=False))
    for reg in (Region("rectangle", 150.0, 120.0, 60.0, 40.0), Region("ellipse", 3.0, 4.0, 30.0, 20.0, 0.0)):
        with open_image(flt, "SCI,1") as image:
            plain = restore_region(restorer.with_config(context=0), image, reg)
            wide = restore_region(restorer, image, reg)
        a, b = plain.restoration, wide.restoration
        assert b.meta["context"] == 8 and "context" not in a.meta
        assert b.data.shape == a.data.shape == b.stamp.lq.shape and b.stamp.origin == a.stamp.origin
        assert np.array_equal(wide.inside, plain.inside)
        # (pixels off the image, and bad pixels, are filled with noise drawn for each cut-out)
        real = ~(a.stamp.padded | a.stamp.bad)
        assert np.array_equal(b.stamp.lq[real], a.stamp.lq[real])
        assert math.isfinite(wide.summary()["conservation"]) == math.isfinite(plain.summary()["conservation"]), (
            wide.summary(), plain.summary())


@pytest.mark.parametrize("x, y", [(195.0, 197.0), (195.5, 197.5), (195.3, 197.2), (10.0, 10.0), (0.49, 3.51)])
def test_a_box_of_w_by_h_pixels_holds_w_times_h_pixels_wherever_it_is_placed(x, y):
    """Issue 22: a 100×60 rectangle on pixel centres reported 99×59 = 5,841 pixels (both edges exclusive); now
    a centre on an edge counts on its low side only, as array slices do. Polygons follow the same rule."""
    m = Region("rectangle", x, y, 100.0, 60.0).footprint((400, 400))[2]
    assert m.shape == (60, 100) and m.sum() == 6000
    square = PolygonRegion([(x - 5, y - 5), (x + 5, y - 5), (x + 5, y + 5), (x - 5, y + 5)])
    assert square.footprint((400, 400))[2].sum() == 100
