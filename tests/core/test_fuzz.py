"""Malformed inputs must end in named errors: no crash, no hang, no memory blow-up."""

import numpy as np
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galviewer import Restorer, open_image
from galviewer.core.nn.weights import ModelMetadata
from galviewer.errors import GalviewerError
from tests.helpers import tiny_model

# Derandomised with no example database, so CI sees the same examples on every run.
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=6000))
def test_random_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fz") / "x.fits"
    path.write_bytes(blob)
    try:
        with open_image(path) as im:
            assert im.data.ndim == 2
    except GalviewerError:
        pass


cards = st.sampled_from(["NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BITPIX", "BSCALE", "BZERO", "EXTNAME", "CTYPE1",
                         "CRPIX1", "CD1_1", "A_ORDER", "EXTVER"])
values = st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=8),
                   st.sampled_from([0, 1, 2, 3, -32, 8, 16, 10**9]))


@FUZZ
@given(st.lists(st.tuples(cards, values), max_size=5), st.integers(0, 3))
def test_malformed_headers(tmp_path_factory, edits, ndim):
    shape = (4, 5, 6)[:ndim]
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32) if ndim else None
    hdu = fits.PrimaryHDU(data)
    raw = bytearray(hdu.header.tostring(), "ascii")
    text = raw.decode()
    for key, value in edits:
        card = f"{key:<8}= {str(value)[:20]:>20}".ljust(80)[:80]
        idx = text.find(f"{key:<8}=")
        if idx >= 0:
            text = text[:idx] + card + text[idx + 80 :]
        else:
            end = text.find("END" + " " * 77)
            text = text[:end] + card + text[end:end + 80 - 80] + text[end:]
            text = text[: (len(text) // 80) * 80]
    body = data.astype(">f4").tobytes() if data is not None else b""
    pad = (-len(body)) % 2880
    path = tmp_path_factory.mktemp("fz") / "h.fits"
    path.write_bytes(text.encode("ascii", "replace")[: len(text)] + body + b"\0" * pad)
    try:
        with open_image(path) as im:
            assert im.data.ndim == 2
    except GalviewerError:
        pass


_RESTORER = Restorer(tiny_model(), ModelMetadata(), "cpu", memory_budget_mb=64)


@FUZZ
@given(
    st.integers(0, 40), st.integers(0, 40),
    st.sampled_from([0.0, np.nan, np.inf, -np.inf, 1e30, -1e-30]),
    st.integers(0, 5),
)
def test_restore_weird_arrays(ny, nx, special, count):
    arr = np.random.default_rng(ny * 41 + nx).normal(size=(ny, nx))
    flat = arr.reshape(-1)
    flat[: min(count, flat.size)] = special
    try:
        res = _RESTORER.restore(arr, uncertainty=False)
        assert res.data.shape == arr.shape and np.isfinite(res.data).all()
    except GalviewerError:
        pass


def test_huge_shape_declaration_is_refused(tmp_path):
    h = fits.Header()
    h["SIMPLE"], h["BITPIX"], h["NAXIS"] = True, -32, 2
    h["NAXIS1"], h["NAXIS2"] = 2**31 - 1, 2**31 - 1
    path = tmp_path / "huge.fits"
    path.write_bytes(h.tostring().encode() + b"\0" * 2880)
    try:
        open_image(path)
    except GalviewerError as exc:
        assert str(path) in str(exc)
    else:
        raise AssertionError("a 2^62-pixel declaration was accepted")
