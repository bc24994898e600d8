import gzip
import mmap
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from galviewer import open_image
from galviewer.core.io.fits import list_images, parse_ext
from galviewer.errors import ImageLoadError, ParameterError
from tests.helpers import sip_header, write_drz, write_flt, write_plain


def test_flt_two_chips_metadata_err_dq_and_sip_wcs(tmp_path):
    path = write_flt(tmp_path / "j8pu0ypaq_flt.fits")
    with open_image(path) as im:
        assert im.meta.kind == "FLT"
        assert (im.meta.extname, im.meta.extver) == ("SCI", 1)
        assert im.meta.instrument == "ACS" and im.meta.detector == "WFC"
        assert im.meta.filter == "F606W"  # CLEAR2L dropped
        assert im.meta.exptime == 507.0 and im.meta.bunit == "ELECTRONS"
        assert im.meta.photflam == pytest.approx(7.7e-20) and im.meta.photzpt == -21.1
        assert im.meta.pixel_scale == pytest.approx(0.05, rel=1e-3)
        assert im.shape == (200, 300) and im.err.shape == (200, 300)
        assert im.bad[10, 10:20].all() and im.bad[100, 50] and im.bad[101, 51]
        assert im.bad.sum() == 12
        assert im.wcs.sip is not None
        # The same sky position as astropy computes with the full header + SIP.
        ref = WCS(fits.getheader(path, ("SCI", 1)))
        for x, y in [(0, 0), (120.3, 80.7), (299, 199)]:
            assert np.allclose(im.wcs.all_pix2world(x, y, 0), ref.all_pix2world(x, y, 0), atol=1e-10)
        # SIP matters: far from CRPIX the distortion moves positions by > 0.1 pixel.
        lin = WCS(fits.getheader(path, ("SCI", 1)))
        lin.sip = None
        assert np.hypot(*np.subtract(lin.all_world2pix(*im.wcs.all_pix2world(0, 0, 0), 0), (0, 0))) > 0.1
    with open_image(path, "SCI,2") as im2:
        assert im2.meta.extver == 2
        assert im2.data.mean() > 1.2 * 40
    with open_image(path, dq_ignore_bits=64) as im3:
        assert not im3.bad[101, 51] and im3.bad[100, 50]


def test_flt_is_memory_mapped_and_header_only_err(tmp_path):
    path = write_flt(tmp_path / "x_flt.fits", header_only_err=True)
    with open_image(path) as im:
        chain, obj = [], im.data
        while obj is not None:
            chain.append(obj)
            obj = getattr(obj, "base", None)
        assert any(isinstance(o, np.memmap | mmap.mmap) for o in chain)
        assert np.all(im.err == 6.0)


def test_list_images_orders_science_first(tmp_path):
    path = write_flt(tmp_path / "x_flt.fits")
    names = [(n, v) for n, v, _ in list_images(path)]
    assert names[:2] == [("SCI", 1), ("SCI", 2)]
    assert ("DQ", 2) in names


def test_drz_weight_and_units(tmp_path):
    path = write_drz(tmp_path / "field_drz.fits")
    with open_image(path) as im:
        assert im.meta.kind == "DRZ"
        assert im.meta.bunit == "ELECTRONS/S"
        assert im.err is None  # WHT is a weight map, not an rms
        assert im.weight is not None
        assert im.bad[:, :5].all() and not im.bad[:, 5:].any()
        assert im.wcs.sip is None


def test_plain_and_gzip(tmp_path):
    data = np.random.default_rng(0).normal(size=(50, 40)).astype(">f4")
    path = write_plain(tmp_path / "plain.fits", data)
    with open_image(path) as im:
        assert im.meta.kind == "plain" and im.wcs is None
        assert np.array_equal(im.data, data)
        assert im.err is None and not im.bad.any()
    gz = tmp_path / "plain.fits.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with open_image(gz) as im:
        assert np.array_equal(im.data, data)


def test_integer_and_scaled_images_become_float(tmp_path):
    hdu = fits.PrimaryHDU(np.arange(100, dtype=np.int16).reshape(10, 10))
    hdu.header["BZERO"] = 32768
    hdu.writeto(tmp_path / "i.fits")
    with open_image(tmp_path / "i.fits") as im:
        assert im.data.dtype == np.float32 and im.data[0, 1] == 32769


def test_degenerate_axis_is_squeezed(tmp_path):
    path = write_plain(tmp_path / "c.fits", np.ones((1, 20, 30), np.float32))
    with open_image(path) as im:
        assert im.shape == (20, 30)


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello world, not FITS" * 10), "not a FITS"),
        (lambda p: write_plain(p, np.ones((3, 20, 30), np.float32)), "cube"),
        (lambda p: write_plain(p, np.full((20, 30), np.nan, np.float32)), "NaN"),
        (lambda p: write_plain(p, np.ones(30, np.float32)), "not a 2-D"),
        (lambda p: fits.HDUList([fits.PrimaryHDU(),
                                 fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]).writeto(p),
         "no image"),
    ],
)
def test_bad_files_raise_named_errors(tmp_path, maker, reason):
    path = tmp_path / "bad.fits"
    maker(path)
    with pytest.raises(ImageLoadError, match=reason) as info:
        open_image(path)
    assert info.value.path == str(path)


def test_truncated_file(tmp_path):
    path = write_plain(tmp_path / "t.fits", np.ones((200, 200), np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageLoadError, match=r"(?i)truncat|damaged|unreadable"):
        open_image(path)


def test_unknown_extension(tmp_path):
    path = write_flt(tmp_path / "x_flt.fits")
    with pytest.raises(ImageLoadError, match="SCI,3 not found"):
        open_image(path, "SCI,3")
    with pytest.raises(ImageLoadError, match="does not exist"):
        open_image(path, 42)
    with pytest.raises(ParameterError, match="ext"):
        parse_ext("SCI,x")


def test_huge_declared_shape_is_refused_without_allocating(tmp_path):
    h = fits.Header()
    h["SIMPLE"], h["BITPIX"], h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = True, -32, 2, 10**6, 10**6
    path = tmp_path / "huge.fits"
    path.write_bytes(h.tostring().encode() + b"\0" * 2880)
    with pytest.raises(ImageLoadError):
        open_image(path)


def test_sip_header_helper_is_valid():
    w = WCS(sip_header((100, 100)))
    assert w.sip is not None and w.has_celestial


def test_a_companion_of_the_wrong_shape_is_ignored_with_a_note(tmp_path):
    """stwcs's ACS FLT carries 2×2 ERR/DQ placeholders: the image still opens (as in DS9), the note says why
    there is no ERR."""
    import numpy as np
    from astropy.io import fits

    from galviewer import open_image

    sci = np.random.default_rng(0).normal(0, 1, (40, 50)).astype(np.float32)
    p = tmp_path / "x_flt.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"), fits.ImageHDU(np.ones((2, 2), np.float32),
                  name="ERR"), fits.ImageHDU(np.zeros((2, 2), np.int16), name="DQ")]).writeto(p)
    with open_image(p) as im:
        assert im.err is None and im.dq is None and not im.bad.any()
        assert any("ERR extension has shape (2, 2)" in w and "ignored" in w for w in im.meta.warnings)
        assert any(w.startswith("DQ extension") for w in im.meta.warnings)
