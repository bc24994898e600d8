"""Issue 13: hostile files, checkpoints, catalogues and arguments end in named errors, bounded, nothing lost.

Each test reproduces one class of the adversarial run (a traceback, a hang or a silent wrong result on the
code before the fix) and checks the named error or the right result now.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from galviewer import Restorer, open_image
from galviewer._atomic import atomic_write
from galviewer.cli import main, safe_label, to_json
from galviewer.core.io.fits import list_images
from galviewer.core.io.stamps import cutout
from galviewer.core.measure import detect as batch
from galviewer.core.nn.weights import ModelMetadata, load_checkpoint, save_checkpoint
from galviewer.errors import ImageLoadError, ParameterError, RestoreError, WeightsError
from tests.helpers import galaxy, sip_header, tiny_model, write_plain

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def _field(shape=(96, 96), seed=0, x=48.0, y=48.0, flux=5000.0):
    rng = np.random.default_rng(seed)
    return (galaxy(shape, x, y, flux) + rng.normal(10.0, 1.0, shape)).astype(np.float32)


def _doctored(tmp_path, /, **changes):
    """A tiny checkpoint whose metadata JSON is edited after writing (tensors untouched)."""
    model = tiny_model()
    path = save_checkpoint(tmp_path / "ok.safetensors", model, ModelMetadata(name="t"))
    state, meta = load_checkpoint(path)
    doc = json.loads(meta.to_json())
    for key, value in sorted(changes.items(), key=lambda kv: kv[0].startswith("config.")):
        if not key.startswith("config."):
            doc[key] = value
        elif isinstance(doc["config"], dict):  # a whole-config edit may have replaced it
            doc["config"][key[7:]] = value
    out = tmp_path / "m.safetensors"
    save_file(state, str(out), metadata={"galviewer": json.dumps(doc), "format": "pt"})
    return out


# ---------------------------------------------------------------- 1. checkpoints
@pytest.mark.parametrize("changes, reason", [
    ({"config.dim": 20000}, "dim: 20000 exceeds the cap"),
    ({"config.num_blocks": [1, 1, 1, 2000000]}, "exceeds the cap of 64 blocks"),
    ({"config.dim": 512, "config.num_blocks": [64, 64, 64, 64]}, "parameters exceed the cap"),
    ({"config.dim": 256}, "shape mismatch"),
    ({"config.num_blocks": [1, 1, 1, 2]}, "missing keys"),
    ({"weights_sha256": ""}, "no weights_sha256"),
    ({"weights_sha256": "zz"}, "not a sha256"),
    ({"extra": [1]}, "extra must be a JSON object"),
    ({"psf_fwhm_pix": "abc"}, "psf_fwhm_pix must be a finite positive number"),
    ({"psf_fwhm_pix": -1.0}, "psf_fwhm_pix must be a finite positive number"),
    ({"noise_rms_range": [0.2, 0.1]}, "noise_rms_range"),
    ({"iterations": "many"}, "iterations must be"),
    ({"config.heads": "abcd"}, "heads: must be a list"),
    ({"config.bias": "yes"}, "bias: must be true or false"),
])
def test_a_lying_checkpoint_is_refused_before_anything_is_built(tmp_path, monkeypatch, changes, reason):
    from galviewer.core.nn import weights

    built = []
    monkeypatch.setattr(weights, "Restormer", lambda *a, **k: built.append(a))
    path = _doctored(tmp_path, **changes)
    t0 = time.perf_counter()
    with pytest.raises(WeightsError, match=re.escape(reason)) as err:
        load_checkpoint(path)
    assert time.perf_counter() - t0 < 10 and not built
    assert str(path) in str(err.value)


def test_a_pth_with_a_block_three_million_is_refused_at_once(tmp_path):
    state = tiny_model().state_dict()
    state["encoder_level1.3000000.attn.temperature"] = torch.ones(1, 1, 1)
    path = tmp_path / "net.pth"
    torch.save({"params": state}, path)
    t0 = time.perf_counter()
    with pytest.raises(WeightsError, match=r"blocks of encoder_level1 are numbered \[0, 3000000\]"):
        load_checkpoint(path)
    assert time.perf_counter() - t0 < 5


def test_pickle_refusal_does_not_advise_weights_only_false(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"params": {"x": Evil()}}, path)
    with pytest.raises(WeightsError, match="never runs code") as err:
        load_checkpoint(path)
    assert "weights_only=False" not in str(err.value) and "os.system" in str(err.value).replace("posix", "os")


def test_a_checkpoint_with_non_finite_output_is_named_as_the_model(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        model.output.weight.fill_(3e38)
    path = save_checkpoint(tmp_path / "boom.safetensors", model, ModelMetadata(name="boom"))
    with pytest.raises(RestoreError, match="checkpoint 'boom' is broken") as err:
        Restorer.from_file(path, "cpu", uncertainty=False).restore(_field())
    assert err.value.name == "model"


json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                         max_size=3), max_leaves=6)
meta_keys = st.sampled_from(["name", "normalisation", "pixel_scale_arcsec", "psf_fwhm_pix", "noise_rms_range",
                             "iterations", "metrics", "extra", "weights_sha256", "format_version", "config",
                             "config.dim", "config.num_blocks", "config.heads", "config.ffn_expansion_factor",
                             "config.bias", "config.layernorm_type", "config.inp_channels"])


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(meta_keys, json_values, min_size=1, max_size=3))
def test_any_metadata_values_load_or_end_in_weights_error(tmp_path_factory, changes):
    path = _doctored(tmp_path_factory.mktemp("meta"), **changes)
    try:
        load_checkpoint(path)
    except WeightsError:
        pass


# ---------------------------------------------------------------- 2. JSON modes
def test_json_modes_print_only_strict_json(tmp_path, capsys):
    h = sip_header((96, 96))
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"  # SIP without -SIP: astropy logs an INFO line
    h["CRPIX1"] = 1e300  # and the centre has no finite sky position
    path = write_plain(tmp_path / "sip.fits", _field(), h)
    assert main(["info", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))
    assert doc["center_radec"] == [None, None]
    assert "SIP" in err
    assert main(["measure", str(path), "--xy", "48", "48", "--json"]) == 0
    out, _ = capsys.readouterr()
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))
    assert to_json({"a": float("nan"), "b": np.float32(np.inf), "c": np.arange(2)}) == \
        '{\n "a": null,\n "b": null,\n "c": [\n  0,\n  1\n ]\n}'


# ---------------------------------------------------------------- 3. a WCS that evaluates to NaN
def test_a_nan_wcs_neither_crashes_the_writer_nor_stops_a_catalogue(tmp_path, tiny_ckpt, capsys):
    h = sip_header((96, 96))
    h["CRPIX1"] = 1e300
    path = write_plain(tmp_path / "nanwcs.fits", _field(), h)
    cat = tmp_path / "cat.ecsv"
    Table({"id": [1, 2], "x": [48.0, 40.0], "y": [48.0, 50.0]}).write(cat)
    assert main(["restore", str(path), "--catalog", str(cat), "-o", str(tmp_path / "out"), "--model",
                 str(tiny_ckpt), "--no-uncertainty"]) == 0
    files = sorted((tmp_path / "out").glob("*.fits"))
    assert len(files) == 2
    hdr = fits.getheader(files[0])
    assert "RA_CEN" not in hdr and "no finite sky position" in str(hdr["COMMENT"])


# ---------------------------------------------------------------- 4. corrupted gzip
def test_a_corrupted_or_truncated_gzip_is_refused(tmp_path):
    plain = write_plain(tmp_path / "a.fits", _field((256, 256)))
    blob = gzip.compress(plain.read_bytes())
    good = tmp_path / "good.fits.gz"
    good.write_bytes(blob)
    with open_image(good) as im:
        assert np.array_equal(im.data, fits.getdata(plain))
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    (tmp_path / "crc.fits.gz").write_bytes(bytes(flipped))
    with pytest.raises(ImageLoadError, match="corrupt gzip stream"):
        open_image(tmp_path / "crc.fits.gz")
    (tmp_path / "cut.fits.gz").write_bytes(blob[: len(blob) * 3 // 4])
    with pytest.raises(ImageLoadError, match="truncated gzip"):
        open_image(tmp_path / "cut.fits.gz")


def test_a_gzip_bomb_stops_at_the_cap(tmp_path, monkeypatch):
    from galviewer.core.io import safeopen as fitsio

    monkeypatch.setattr(fitsio, "MAX_GZIP_BYTES", 1 << 20)
    path = write_plain(tmp_path / "big.fits", np.zeros((1024, 1024), np.float32))
    (tmp_path / "big.fits.gz").write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(ImageLoadError, match="decompresses to more than"):
        open_image(tmp_path / "big.fits.gz")


# ---------------------------------------------------------------- 5. tile-compressed images
def test_tile_compressed_images_are_listed_and_size_guarded(tmp_path):
    path = tmp_path / "comp.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_field(), name="SCI")]).writeto(path)
    assert list_images(path) == [("SCI", 1, (96, 96))]
    raw = bytearray(path.read_bytes())
    for key in (b"ZNAXIS1 =", b"ZNAXIS2 ="):
        i = raw.find(key)
        raw[i: i + 80] = f"{key.decode()} {100000:>20}".ljust(80).encode()
    (tmp_path / "huge.fits").write_bytes(bytes(raw))
    with pytest.raises(ImageLoadError, match=r"declared image size \(100000, 100000\) is too large"):
        open_image(tmp_path / "huge.fits")


# ---------------------------------------------------------------- 6. catalogue labels
def test_duplicate_and_hostile_labels_each_get_their_own_safe_file(tmp_path, tiny_ckpt, capsys):
    path = write_plain(tmp_path / "img.fits", _field((128, 128), x=64, y=64))
    cat = tmp_path / "cat.ecsv"
    Table({"id": ["7", "7", "7", "a/../../escaped_a", ".hidden"], "x": [64.0, 60.0, 70.0, 64.0, 64.0],
           "y": [64.0, 60.0, 70.0, 64.0, 64.0]}).write(cat)
    out = tmp_path / "deep" / "out"
    assert main(["restore", str(path), "--catalog", str(cat), "-o", str(out), "--model", str(tiny_ckpt),
                 "--no-uncertainty", "--overwrite"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["img_00007.fits", "img_00007_2.fits", "img_00007_3.fits", "img_a_.._.._escaped_a.fits",
                     "img_hidden.fits", "img_restored.ecsv"]
    assert all(p.parent == out for p in tmp_path.rglob("img_*") if p.name != "img.fits")  # nothing outside -o
    err = capsys.readouterr().err
    assert "duplicate label '00007' written as '00007_2'" in err and "'a/../../escaped_a' written as" in err


@FUZZ
@given(st.text(max_size=200))
def test_safe_label_never_leaves_the_folder(label):
    name = safe_label(label)
    assert re.fullmatch(r"[A-Za-z0-9+_-][A-Za-z0-9._+-]{0,63}", name)
    assert ".." not in name.split("/") and "/" not in name and not name.startswith(".")


# ---------------------------------------------------------------- 7. infinite output
def test_a_pixel_near_the_float32_limit_is_a_named_error_and_nothing_is_written(tmp_path, tiny_ckpt, capsys):
    """Handed to the restorer as an array it is refused by name; in a file the reader marks it bad instead
    (``test_absurd_pixels_are_bad_pixels_and_said_so_whatever_their_type``)."""
    data = _field((64, 64))
    data[5, 5] = 3e38
    with pytest.raises(RestoreError, match="beyond any plausible pixel value"):
        Restorer.from_file(tiny_ckpt, "cpu", uncertainty=False).restore(data)
    path = write_plain(tmp_path / "hot.fits", data)
    out = tmp_path / "o.fits"
    assert main(["restore", str(path), "--xy", "32", "32", "-o", str(out), "--model", str(tiny_ckpt)]) == 0
    assert "not data: marked bad" in capsys.readouterr().err and not list(tmp_path.glob(".*.part"))


def test_an_output_that_overflows_float32_is_a_named_error(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        model.output.weight.fill_(1e30)  # finite network output, ~1e31, times the input's scale overflows
    path = save_checkpoint(tmp_path / "loud.safetensors", model, ModelMetadata(name="loud"))
    with pytest.raises(RestoreError, match="does not fit in float32"):
        Restorer.from_file(path, "cpu", uncertainty=False).restore(_field() * 1e9, rescale="minmax")


# ---------------------------------------------------------------- 8. masked arrays
def test_a_masked_pixel_is_not_restored_as_data(tiny_ckpt):
    r = Restorer.from_file(tiny_ckpt, "cpu", uncertainty=False)
    data = _field((64, 64))
    clean = r.restore(data)
    hot = np.ma.MaskedArray(data.copy(), mask=np.zeros(data.shape, bool))
    hot[10, 50] = 1e6
    hot.mask[10, 50] = True
    res = r.restore(hot)
    assert res.stamp.bad[10, 50] and res.lq[10, 50] < 100
    assert np.allclose(res.data, clean.data, rtol=0.05, atol=0.5 * np.std(clean.data))
    st_ = cutout(hot, 32, 32, 48)
    assert st_.bad[10 - st_.origin[1], 50 - st_.origin[0]]


# ---------------------------------------------------------------- 9. hangs
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.fits"
    os.mkfifo(fifo)
    code = ("import sys; from galviewer.cli import main; "
            f"sys.exit(main(['info', {str(fifo)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "FIFO" in r.stderr
    with pytest.raises(WeightsError, match="not a regular file"):
        load_checkpoint(_fifo(tmp_path / "m.safetensors"))


def _fifo(path):
    os.mkfifo(path)
    return path


def test_a_stamp_mostly_outside_the_image_is_refused_at_once(tmp_path, tiny_ckpt, capsys):
    path = write_plain(tmp_path / "small.fits", _field((200, 300), x=150, y=100))
    t0 = time.perf_counter()
    assert main(["restore", str(path), "--xy", "150", "100", "--size", "4000", "-o", str(tmp_path / "o.fits"),
                 "--model", str(tiny_ckpt)]) == 2
    assert "--size: must be between 8 and 1024" in capsys.readouterr().err
    with pytest.raises(ParameterError, match=r"would lie 9\d\.\d % outside the 300×200 image"):
        cutout(fits.getdata(path), 150, 100, 1000)
    tiny = write_plain(tmp_path / "tiny.fits", _field((10, 10), x=5, y=5))
    with pytest.raises(ParameterError, match=r"97\.6 % outside"):
        cutout(fits.getdata(tiny), 5, 5, 64, refine=False)
    assert time.perf_counter() - t0 < 30


# ---------------------------------------------------------------- 10. smaller ones
def test_ragged_and_non_numeric_inputs_are_named(tmp_path, tiny_ckpt, capsys):
    r = Restorer.from_file(tiny_ckpt, "cpu", uncertainty=False)
    with pytest.raises(ParameterError, match="not a rectangular numeric array"):
        r.restore([[1.0, 2.0], [3.0]])
    path = write_plain(tmp_path / "img.fits", _field())
    cat = tmp_path / "cat.ecsv"
    Table({"x": ["a", "b"], "y": [1.0, 2.0]}).write(cat)
    assert main(["restore", str(path), "--catalog", str(cat), "-o", str(tmp_path / "o"), "--model",
                 str(tiny_ckpt)]) == 2
    assert "column 'x' is not numeric" in capsys.readouterr().err


def test_a_killed_writer_leaves_no_part_file_behind_the_next_write(tmp_path):
    dest = tmp_path / "cat.ecsv"
    code = ("import os, signal, sys; from pathlib import Path; from galviewer._atomic import atomic_write; "
            "atomic_write(sys.argv[1], lambda t: (Path(t).write_text('half'), os.kill(os.getpid(), signal.SIGKILL)))")
    r = subprocess.run([sys.executable, "-c", code, str(dest)], capture_output=True, timeout=120)
    assert r.returncode == -9 and not dest.exists()
    assert len(list(tmp_path.glob(".cat.ecsv.*.part"))) == 1  # what SIGKILL leaves ...
    atomic_write(dest, lambda t: t.write_text("whole"))
    assert dest.read_text() == "whole" and not list(tmp_path.glob(".*.part"))  # ... the next write removes



def test_a_folder_sweep_removes_dead_writers_parts_only(tmp_path):
    """What a survey does when all its writers are done: every killed writer's temporary file goes, a live
    writer's (this process) and files that are not galviewer's temporaries stay."""
    from galviewer._atomic import sweep_folder

    code = ("import os, signal, sys; from galviewer._atomic import atomic_write; "
            "atomic_write(sys.argv[1], lambda t: os.kill(os.getpid(), signal.SIGKILL))")
    for name in ("a_SCI1_c0000.fits", "catalog.parquet"):
        assert subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], timeout=120).returncode == -9
    live = tmp_path / f".b.fits.{os.getpid()}.k2j4_x.part"
    other = tmp_path / ".notes.part"
    live.write_text("")
    other.write_text("")
    removed = sweep_folder(tmp_path)
    assert sorted(p.name.split(".")[1] for p in removed) == ["a_SCI1_c0000", "catalog"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_no_output_may_be_an_input(tmp_path, tiny_ckpt, capsys):
    path = write_plain(tmp_path / "img.fits", _field())
    before = path.read_bytes()
    assert main(["detect", str(path), "-o", str(path), "--overwrite"]) == 2
    assert main(["restore", str(path), "--xy", "48", "48", "-o", str(path), "--overwrite", "--model",
                 str(tiny_ckpt)]) == 2
    assert main(["restore", str(path), "--xy", "48", "48", "-o", str(tiny_ckpt), "--overwrite", "--model",
                 str(tiny_ckpt)]) == 2
    assert path.read_bytes() == before and capsys.readouterr().err.count("is also an input file") == 3


@pytest.mark.parametrize("make, message", [
    (lambda p: fits.PrimaryHDU(np.zeros((3, 20, 20), np.float32)).writeto(p),
     r"^[^:]*cube.fits: HDU 0 is a 3-D cube of shape \(3, 20, 20\); choose one plane \(--ext PLANE,k, k = 1 to 3\)$"),
    (lambda p: p.write_bytes(__import__("bz2").compress(b"SIMPLE  =" + b" " * 2871)),
     "is bzip2-compressed"),
    (lambda p: p.write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  = \xe9" + b" " * 69
                             + b" " * 2720), "header card 2 holds a non-ASCII byte 0xe9"),
])
def test_messages_say_what_is_wrong(tmp_path, make, message):
    path = tmp_path / "cube.fits"
    make(path)
    with pytest.raises(ImageLoadError) as err:
        open_image(path)
    assert re.search(message, str(err.value)), str(err.value)


def test_a_text_extver_counts_as_absent(tmp_path):
    hdr = fits.Header([("EXTNAME", "SCI"), ("EXTVER", "one")])
    path = tmp_path / "ev.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(_field(), header=hdr)]).writeto(path, output_verify="silentfix")
    with open_image(path, "SCI,1") as im:
        assert (im.meta.extname, im.meta.extver) == ("SCI", 1) and im.images() == [("SCI", 1, (96, 96))]


def test_a_masked_hole_over_the_source_is_refused(tmp_path, tiny_ckpt):
    data = _field((128, 128), x=64, y=64)
    data[40:90, 40:90] = np.nan
    path = write_plain(tmp_path / "hole.fits", data)
    with open_image(path) as im, pytest.raises(ParameterError, match=r"hole of .* too wide to in-paint"):
        cutout(im, 64, 64, 64, refine=False)
    small = _field((128, 128), x=64, y=64)
    small[63:66, 63:66] = np.nan  # a few bad pixels on the core are in-painted, as before
    st_ = cutout(small, 64, 64, 64, refine=False)
    assert st_.bad.sum() == 9 and np.isfinite(st_.lq).all()


# ---------------------------------------------------------------- detection memory and cap
def test_tiled_detection_finds_what_whole_image_detection_finds(monkeypatch):
    rng = np.random.default_rng(3)
    img = rng.normal(10.0, 1.0, (700, 650)).astype(np.float32)
    for x, y in rng.uniform(20, 630, (40, 2)):
        img += galaxy(img.shape, x, y, flux=rng.uniform(300, 3000), r=1.5).astype(np.float32)
    whole = batch.detect(img)
    monkeypatch.setattr(batch, "DETECT_TILE", 256)
    monkeypatch.setattr(batch, "DETECT_MARGIN", 48)
    tiled = batch.detect(img)
    assert len(tiled) == len(whole) >= 35
    a = np.array(sorted((s.x, s.y) for s in whole))
    b = np.array(sorted((s.x, s.y) for s in tiled))
    assert np.abs(a - b).max() < 0.05
    assert len({s.id for s in tiled}) == len(tiled)
    capped = batch.detect(img, max_sources=5)
    assert len(capped) == 5 and capped.found == len(whole) and capped.capped


def test_a_symlink_loop_as_input_is_named_not_a_traceback(tmp_path, capsys):
    """Issue 22: a symlink loop ended in RuntimeError('Symlink loop') from the input-as-output check."""
    from galviewer.cli import main

    loop = tmp_path / "loop.fits"
    loop.symlink_to(loop)
    for args in (["restore", str(loop), "--xy", "5", "5", "-o", str(tmp_path / "o.fits")],
                 ["detect", str(loop), "-o", str(tmp_path / "o.ecsv")], ["info", str(loop)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert str(loop) in err and "Traceback" not in err and ("loops back" in err or "symbolic links" in err)


@pytest.mark.parametrize("value, dtype", [(1e30, np.float32), (3e38, np.float32), (1e300, np.float64),
                                          (-1e35, np.float64)])
def test_absurd_pixels_are_bad_pixels_and_said_so_whatever_their_type(tmp_path, capsys, value, dtype):
    """Issue 22: a 1e300 pixel was silently in-painted (and pulled the click's centroid onto it) while a 1e30 pixel
    was refused; now every |v| >= 1e30 is a bad pixel, counted in the file's notes, and the click stays put."""
    from astropy.io import fits

    from galviewer.cli import main
    from galviewer.core.io.fits import open_image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    img = (0.01 * rng.normal(size=(96, 96)) + np.exp(-((xx - 48) ** 2 + (yy - 48) ** 2) / 18)).astype(dtype)
    img[44, 53] = value
    path = tmp_path / "absurd.fits"
    fits.PrimaryHDU(img).writeto(path)
    with open_image(path) as im:
        assert im.bad[44, 53] and im.bad.sum() == 1 and "1 pixel(s) beyond ±1e+30" in im.meta.warnings[0]
    out = tmp_path / "o.fits"
    assert main(["restore", str(path), "--xy", "48", "48", "-o", str(out), "--no-uncertainty"]) == 0
    assert "beyond ±1e+30 are not data" in capsys.readouterr().err
    h = fits.getheader(out)
    assert abs(h["XCENTER"] - 48) < 0.5 and abs(h["YCENTER"] - 48) < 0.5 and h["NBADPIX"] >= 1


def test_two_extensions_of_the_same_name_are_said_and_either_can_be_chosen(tmp_path):
    """Issue 22: with two SCI,1 extensions the first was taken without a word."""
    from astropy.io import fits

    from galviewer.core.io.fits import open_image

    path = tmp_path / "twins.fits"
    a, b = np.zeros((32, 32), np.float32), np.ones((32, 32), np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(a, name="SCI", ver=1), fits.ImageHDU(b, name="SCI", ver=1)]
                 ).writeto(path)
    with open_image(path) as im:
        assert float(im.data.max()) == 0.0
        assert any("2 extensions are named SCI,1 (HDUs 1, 2): HDU 1 is read" in n for n in im.meta.warnings)
    with open_image(path, 2) as im:
        assert float(im.data.min()) == 1.0



def test_a_waiver_cube_opens_plane_by_plane_with_each_chips_wcs(tmp_path):
    """Issue 22: a WFPC2 waiver file (four chips as the planes of a cube, a group parameter table after it) was
    refused with "choose one plane" and nothing let the user choose; now ``PLANE,k`` opens chip k with the WCS and
    photometry of its table row (stwcs' u40x010hm_c0f.fits: PC1 0.0455″/px, WF2-4 0.0996″/px)."""
    from astropy.io import fits
    from astropy.table import Table

    from galviewer.core.io.fits import list_images, open_image

    cube = np.stack([np.full((40, 40), k, np.float32) for k in (1, 2, 3)])
    head = fits.Header({"INSTRUME": "WFPC2", "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "GROUP",
                        "CD3_3": 1.0})
    rows = Table({"CRVAL1": [10.0, 10.01, 10.02], "CRVAL2": [-5.0, -5.0, -5.0], "CRPIX1": [20.0] * 3,
                  "CRPIX2": [20.0] * 3, "CD1_1": [-1e-5, -2e-5, -3e-5], "CD1_2": [0.0] * 3, "CD2_1": [0.0] * 3,
                  "CD2_2": [1e-5, 2e-5, 3e-5], "PHOTFLAM": [1e-18, 2e-18, 3e-18], "DETECTOR": [1, 2, 3]})
    path = tmp_path / "u_c0f.fits"
    fits.HDUList([fits.PrimaryHDU(cube, head), fits.BinTableHDU(rows)]).writeto(path)
    assert [(n, v) for n, v, _ in list_images(path)] == [("PLANE", 1), ("PLANE", 2), ("PLANE", 3)]
    with pytest.raises(ImageLoadError, match="--ext PLANE,k"):
        open_image(path)
    for k in (1, 2, 3):
        with open_image(path, f"PLANE,{k}") as im:
            assert im.data.shape == (40, 40) and float(im.data[0, 0]) == k
            assert im.meta.extname == "PLANE" and im.meta.extver == k and im.meta.detector == str(k)
            assert im.meta.photflam == pytest.approx(k * 1e-18)
            assert im.wcs.wcs.crval[0] == pytest.approx(10.0 + 0.01 * (k - 1))
            assert im.meta.pixel_scale == pytest.approx(k * 1e-5 * 3600, rel=1e-6)
    with pytest.raises(ImageLoadError, match="plane 4 does not exist"):
        open_image(path, "PLANE,4")
