import numpy as np
import pytest

from galviewer import cutout, open_image
from galviewer.core.io.stamps import refine_centroid, stamp_from_array
from galviewer.errors import ParameterError
from tests.helpers import SOURCES, galaxy, write_flt


def test_cutout_centres_the_source_and_keeps_wcs(tmp_path):
    path = write_flt(tmp_path / "x_flt.fits")
    x, y, _ = SOURCES[0]
    with open_image(path) as im:
        st = cutout(im, x + 2.6, y - 1.8)  # a click 3 px off
        assert st.shape == (64, 64) and st.lq.dtype == np.float32
        assert st.center == pytest.approx((x, y), abs=0.15)
        assert st.origin == (round(st.center[0]) - 32, round(st.center[1]) - 32)
        assert np.unravel_index(np.argmax(st.lq), st.shape) == (32, 32)
        # Stamp pixel -> sky equals parent pixel -> sky (SIP included).
        sx, sy = st.center_in_stamp
        assert np.allclose(st.wcs.all_pix2world(sx, sy, 0), im.wcs.all_pix2world(*st.center, 0), atol=1e-10)
        assert st.err is not None and st.err.shape == (64, 64)
        assert st.source == str(path) and st.ext == "SCI,1"
        assert not st.padded.any()


def test_edge_stamp_is_padded_with_matching_noise(tmp_path):
    path = write_flt(tmp_path / "x_flt.fits")
    with open_image(path) as im:
        st = cutout(im, 3.0, 190.0, refine=False)
        assert st.padded.sum() == 64 * 64 - 35 * 42
        inside = st.lq[~st.padded & ~st.bad]
        pad = st.lq[st.padded]
        assert pad.mean() == pytest.approx(np.median(inside), abs=1.0)
        assert pad.std() == pytest.approx(6.0, rel=0.15)  # the image's noise rms
        again = cutout(im, 3.0, 190.0, refine=False)
        assert np.array_equal(st.lq, again.lq)  # deterministic
        assert np.all(st.err[st.padded] == pytest.approx(st.background_rms))


def test_bad_pixels_are_inpainted_and_remembered(tmp_path):
    path = write_flt(tmp_path / "x_flt.fits")
    with open_image(path) as im:
        st = cutout(im, 50.0, 100.0, refine=False)
        # The DQ-flagged hot pixel (50, 100) and warm pixel (51, 101).
        assert st.bad[32, 32] and st.bad[33, 33]
        assert st.bad.sum() == 2
        assert np.isfinite(st.lq).all()
        assert abs(st.lq[32, 32] - st.background_level) < 5 * st.background_rms


def test_nan_pixels_in_arrays():
    img = galaxy((80, 80), 40, 40, 1000.0) + np.random.default_rng(0).normal(0, 0.01, (80, 80))
    img[40, 40] = np.nan
    st = cutout(img, 40, 40, 32, refine=False)
    assert st.bad[16, 16] and np.isfinite(st.lq).all()
    assert st.lq[16, 16] == pytest.approx(img[39, 40], rel=0.3)
    wrapped = stamp_from_array(img)
    assert wrapped.bad.sum() == 1 and np.isfinite(wrapped.lq).all()


def test_refine_centroid_accuracy():
    img = galaxy((100, 100), 47.3, 52.8, 1000.0, r=2.0, q=0.9)
    x, y = refine_centroid(img, 45.0, 55.0)
    assert (x, y) == pytest.approx((47.3, 52.8), abs=0.1)
    # Pure flat data: start position returned.
    assert refine_centroid(np.zeros((50, 50)), 20.0, 30.0) == (20.0, 30.0)


def test_cutout_errors():
    img = np.zeros((50, 50))
    with pytest.raises(ParameterError, match="outside"):
        cutout(img, 60, 10)
    with pytest.raises(ParameterError, match="size"):
        cutout(img, 10, 10, 4)
    with pytest.raises(ParameterError, match="err"):
        cutout(img, 10, 10, err=np.zeros((3, 3)))
    with pytest.raises(ParameterError, match="position"):
        cutout(img, np.nan, 10)
    with pytest.raises(ParameterError, match="image"):
        stamp_from_array(np.zeros((0, 4)))
    with pytest.raises(ParameterError, match="image"):
        stamp_from_array(np.full((4, 4), np.nan))


def test_a_context_margin_widens_the_cut_out_but_not_what_may_lie_outside():
    """``cutout(..., context=m)`` is the stamp ``size + 2m`` wide whose central ``size`` is the plain stamp; the
    share of synthetic noise allowed is judged on that centre, so a click a plain stamp allows is never refused
    because of the margin (a 34×34 image: 72 % of a 64-px stamp outside it, 82 % of the 80-px cut-out)."""
    rng = np.random.default_rng(3)
    img = rng.normal(0.0, 1.0, (34, 34)) + galaxy((34, 34), 17.3, 16.6)
    plain = cutout(img, 17.3, 16.6, 64)
    wide = cutout(img, 17.3, 16.6, 64, context=8)
    assert plain.lq.shape == (64, 64) and wide.lq.shape == (80, 80)
    assert (wide.origin[0] + 8, wide.origin[1] + 8) == plain.origin
    assert np.array_equal(wide.padded[8:-8, 8:-8], plain.padded)
    assert 0.7 < plain.padded.mean() < 0.8 < wide.padded.mean()
    real = ~plain.padded
    assert np.array_equal(wide.lq[8:-8, 8:-8][real], plain.lq[real])
    with pytest.raises(ParameterError, match="context"):
        cutout(img, 17.3, 16.6, 64, context=-1)
    with pytest.raises(ParameterError, match="context"):
        cutout(img, 17.3, 16.6, 64, context=300)
