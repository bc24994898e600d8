import itertools

import numpy as np
import pytest
from astropy.wcs import WCS

from galviewer import open_image
from galviewer.core.io.wcsgrid import format_dec, format_ra, wcs_grid
from galviewer.errors import ParameterError
from tests.helpers import write_flt


def _tan(ra: float, dec: float, scale_deg: float = 0.05 / 3600, rot: float = 30.0) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [100.5, 100.5]
    c, s = np.cos(np.radians(rot)), np.sin(np.radians(rot))
    w.wcs.cd = scale_deg * np.array([[-c, s], [s, c]])
    return w


def _on_lines(w: WCS, lines) -> None:
    for line in lines:
        ok = np.isfinite(line.x)
        ra, dec = w.all_pix2world(line.x[ok], line.y[ok], 0)
        got = ra if line.axis == "ra" else dec
        diff = (got - line.value + 180) % 360 - 180 if line.axis == "ra" else got - line.value
        assert np.abs(diff).max() < 1e-7, (line.label, np.abs(diff).max())


def test_grid_lines_lie_on_their_ra_and_dec_through_rotation_and_ra_zero():
    w = _tan(359.9995, -30.0)  # the image straddles RA 0h
    lines = wcs_grid(w, (200, 200))
    ras = [line for line in lines if line.axis == "ra"]
    decs = [line for line in lines if line.axis == "dec"]
    assert 2 <= len(ras) <= 16 and 2 <= len(decs) <= 16
    assert any(line.label.startswith("23:59:") for line in ras) and any(line.label.startswith("00:00:") for line in ras)
    _on_lines(w, lines)
    for line in lines:  # clipped to the image
        ok = np.isfinite(line.x)
        assert line.x[ok].min() >= -0.5 and line.x[ok].max() <= 199.5 and line.y[ok].max() <= 199.5


def test_grid_follows_a_sip_distorted_flt_and_needs_a_celestial_wcs(tmp_path):
    with open_image(write_flt(tmp_path / "x_flt.fits")) as im:
        lines = wcs_grid(im.wcs, im.data.shape)
        assert lines
        _on_lines(im.wcs, lines)
    with pytest.raises(ParameterError, match="celestial"):
        wcs_grid(None, (10, 10))


def test_sexagesimal_labels_round_with_the_spacing():
    assert format_ra(3.595508, 0.1) == "00:14:22.9"
    assert format_ra(359.99999, 1) == "00:00:00"
    assert format_dec(-30.388685, 1) == "-30:23:19"
    assert format_dec(0.5, 0.1) == "+00:30:00.0"


@pytest.mark.parametrize("cx, cy", [(30.0, 170.0), (100.0, 100.0), (185.0, 12.0)])
def test_a_zoomed_box_gets_finer_lines_inside_it(cx, cy):
    """The viewer's zoom: a 20-px box anywhere (corners included) gets a spacing of its own, at least two lines of
    each kind, every traced point inside the box and on its RA/Dec."""
    w = _tan(359.9995, -30.0)
    whole = wcs_grid(w, (200, 200))
    box = (cx - 10, cx + 10, cy - 10, cy + 10)
    lines = wcs_grid(w, (200, 200), box=box)
    _on_lines(w, lines)
    for axis in ("ra", "dec"):
        assert sum(line.axis == axis for line in lines) >= 2
    def dec_spacing(grid):
        return min(abs(a.value - b.value) for a, b in itertools.pairwise(grid) if a.axis == b.axis == "dec")

    assert dec_spacing(lines) < dec_spacing(whole) / 3
    for line in lines:
        ok = np.isfinite(line.x)
        assert (line.x[ok] >= box[0]).all() and (line.x[ok] <= box[1]).all()
        assert (line.y[ok] >= box[2]).all() and (line.y[ok] <= box[3]).all()
    # a view beside the image shows no grid; a box larger than the image is the image
    assert wcs_grid(w, (200, 200), box=(300, 400, 300, 400)) == []
    assert [g.label for g in wcs_grid(w, (200, 200), box=(-50, 260, -50, 260))] == [g.label for g in whole]
