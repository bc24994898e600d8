"""Issue 12 (1): cosmic-ray cleaning keeps real stars, is the same in the app and the CLI, and says what it did."""

from pathlib import Path

import numpy as np
from astropy.io import fits

from galviewer import cutout, open_image
from galviewer.cli import main
from galviewer.core.io.cosmics import clean_cosmic_rays

STIS = Path(__file__).resolve().parents[1] / "data" / "realdata" / "stis_star.fits"


def test_a_real_neighbour_star_survives_and_a_cosmic_ray_goes():
    with open_image(STIS) as im:
        st = cutout(im, 31.5, 31.5, 64, refine=False)
        assert st.extra["readnoise"] > 0  # from READNSE
        cleaned, n = clean_cosmic_rays(st)
    # the neighbour at (747.5, 337.5) of the parent SCI,1 (955 counts there; 941 in SCI,2, so it is real)
    h = fits.getheader(STIS)
    ox, oy = h["ORIGX"] + st.origin[0], h["ORIGY"] + st.origin[1]  # parent pixel of stamp pixel (0, 0)
    y, x = 337 - oy, 747 - ox
    box = (slice(y - 1, y + 3), slice(x - 1, x + 3))
    assert st.lq[box].max() > 800
    assert cleaned.lq[box].max() > 0.95 * st.lq[box].max() and not cleaned.bad[box].any()
    # the central star is not touched either, and the sharp hits elsewhere are cleaned
    core = (slice(28, 36), slice(28, 36))
    assert not (cleaned.bad[core] & ~st.bad[core]).any()
    assert n >= 1 and (cleaned.bad & ~st.bad).sum() == n


def test_the_cli_cleans_flt_stamps_like_the_viewer(tmp_path, tiny_ckpt, capsys):
    out = tmp_path / "s.fits"
    assert main(["restore", str(STIS), "--xy", "31.5", "31.5", "-o", str(out), "--model", str(tiny_ckpt),
                 "--no-uncertainty", "--clean-crs", "--context", "0"]) == 0  # the 64-px cut-out itself
    err = capsys.readouterr().err
    n = int(err.split("galviewer: note: ")[1].split()[0])
    with open_image(STIS) as im:
        st = cutout(im, 31.5, 31.5, 64)
        _, expected = clean_cosmic_rays(st)
    assert n == expected > 0
    mask = fits.getdata(out, "MASK")
    assert int(((mask & 1) != 0).sum()) == int(st.bad.sum()) + n
    drz = Path(STIS).with_name("wfc3ir_star.fits")
    assert main(["measure", str(drz), "--xy", "47.5", "47.5", "--clean-crs"]) == 0
    assert "DRZ image: no cosmic-ray cleaning" in capsys.readouterr().err
    assert np.isfinite(fits.getdata(out)).all()


def test_detection_on_a_single_exposure_leaves_cosmic_ray_tracks_out(tmp_path):
    """A 20-px cosmic-ray track in an FLT is a 'source' to a plain detection; with the whole-image L.A.Cosmic mask
    (the default) it is not, and the galaxies are all still found."""
    from galviewer.core.measure.detect import detect
    from tests.helpers import SOURCES, write_flt

    path = write_flt(tmp_path / "j8pu0ycrq_flt.fits")
    with fits.open(path, mode="update") as h:
        sci = h["SCI", 1].data
        for k in range(20):  # a grazing hit: a sharp diagonal streak, 3000 e- a pixel
            sci[150 + k // 2, 200 + k] += 3000.0
    with open_image(path, "SCI,1") as im:
        plain = detect(im, cosmic_rays=False)
        masked = detect(im)
    def near(found, x, y):
        return any(abs(s.x - x) < 3 and abs(s.y - y) < 3 for s in found)

    assert near(plain, 209.5, 154.75) and not near(masked, 209.5, 154.75)
    assert all(near(masked, x, y) for x, y, _ in SOURCES) and len(masked) == len(SOURCES)
