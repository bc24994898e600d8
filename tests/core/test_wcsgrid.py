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
