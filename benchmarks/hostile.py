"""Hostile-input corpus: crafted FITS files, checkpoints, catalogues and arguments through the CLI.

    python benchmarks/hostile.py [--timeout 60]

Every case runs ``galviewer ...`` in a fresh subprocess under a time limit and is classified:

* **named** — refused with ``galviewer: error: ...`` (exit 2), or a partial run that names each failure (exit 1);
* **ok** — exit 0 where success is the right answer (checked: the output exists and is finite FITS);
* **traceback** — a Python traceback reached the user;
* **hang** — killed at the time limit;
* **silent-wrong** — exit 0 where the input is bad, or a bad output (non-finite FITS, a file outside ``-o``,
  an input overwritten, invalid JSON).

The table (per family, and the total) is written to ``benchmarks/results/hostile.md``.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _report import write_table  # benchmarks/ is sys.path[0] when a script is run
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _field(shape=(96, 96), x=48.0, y=48.0, seed=0) -> np.ndarray:
    from tests.helpers import galaxy

    rng = np.random.default_rng(seed)
    return (galaxy(shape, x, y, 5000.0) + rng.normal(10.0, 1.0, shape)).astype(np.float32)


# Readable FITS files that hold nothing to restore at (48, 48): `info` must describe them, `restore` refuse them.
_INFO_ONLY = {"constant", "nan_hole_on_source", "tiny_10x10", "dq_all_bad"}


def _fits_cases(d: Path) -> list[tuple[str, Path, bool]]:
    """(name, file, valid) for crafted FITS inputs (valid: restorable; see ``_INFO_ONLY``)."""
    from tests.helpers import sip_header

    cases: list[tuple[str, Path, bool]] = []

    def add(name: str, valid: bool, write: Callable[[Path], None], suffix: str = ".fits") -> None:
        p = d / f"{name}{suffix}"
        write(p)
        cases.append((name, p, valid))

    good = _field()
    add("good", True, lambda p: fits.PrimaryHDU(good).writeto(p))
    raw = (d / "good.fits").read_bytes()
    gz = gzip.compress(raw)
    add("good_gz", True, lambda p: p.write_bytes(gz), ".fits.gz")
    flipped = bytearray(gz)
    flipped[len(gz) // 2] ^= 1
    add("gz_crc", False, lambda p: p.write_bytes(bytes(flipped)), ".fits.gz")
    add("gz_truncated", False, lambda p: p.write_bytes(gz[: len(gz) // 2]), ".fits.gz")
    add("gz_of_text", False, lambda p: p.write_bytes(gzip.compress(b"hello")), ".fits.gz")
    add("bz2", False, lambda p: p.write_bytes(bz2.compress(raw)), ".fits.bz2")
    add("empty", False, lambda p: p.write_bytes(b""))
    add("text", False, lambda p: p.write_text("not fits\n"))
    add("truncated", False, lambda p: p.write_bytes(raw[: len(raw) // 2]))
    bad = bytearray(raw)
    bad[80 * 2 + 12] = 0xE9
    add("non_ascii_header", False, lambda p: p.write_bytes(bytes(bad)))
    add("no_end", False, lambda p: p.write_bytes(raw[:80] + b" " * 2800))
    add("cube", False, lambda p: fits.PrimaryHDU(np.zeros((3, 40, 40), np.float32)).writeto(p))
    add("one_d", False, lambda p: fits.PrimaryHDU(np.zeros(100, np.float32)).writeto(p))
    add("all_nan", False, lambda p: fits.PrimaryHDU(np.full((64, 64), np.nan, np.float32)).writeto(p))
    add("constant", False, lambda p: fits.PrimaryHDU(np.ones((64, 64), np.float32)).writeto(p))
    add("header_only", False, lambda p: fits.PrimaryHDU().writeto(p))
    add("table_only", False, lambda p: fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column("a", "E", array=np.arange(3.0))])]).writeto(p))
    hot = good.copy()
    hot[5, 5] = 3e38
    add("pixel_3e38", False, lambda p: fits.PrimaryHDU(hot).writeto(p))
    hole = _field((128, 128), 64, 64)
    hole[40:90, 40:90] = np.nan
    add("nan_hole_on_source", False, lambda p: fits.PrimaryHDU(hole).writeto(p))
    add("tiny_10x10", False, lambda p: fits.PrimaryHDU(_field((10, 10), 5, 5)).writeto(p))
    h = sip_header((96, 96))
    h["CRPIX1"] = 1e300
    add("wcs_nan", True, lambda p: fits.PrimaryHDU(good, h).writeto(p))
    h2 = sip_header((96, 96))
    h2["CTYPE1"], h2["CTYPE2"] = "RA---TAN", "DEC--TAN"
    add("sip_without_suffix", True, lambda p: fits.PrimaryHDU(good, h2).writeto(p))
    h3 = sip_header((96, 96))
    h3["CD1_1"] = 0.0
    h3["CD1_2"] = 0.0
    add("wcs_singular", True, lambda p: fits.PrimaryHDU(good, h3).writeto(p))
    add("compressed", True, lambda p: fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(good, name="SCI")])
        .writeto(p))
    comp = bytearray((d / "compressed.fits").read_bytes())
    for key in (b"ZNAXIS1 =", b"ZNAXIS2 ="):
        i = comp.find(key)
        comp[i: i + 80] = f"{key.decode()} {100000:>20}".ljust(80).encode()
    add("compressed_100000sq", False, lambda p: p.write_bytes(bytes(comp)))
    big = bytearray(raw)
    i = big.find(b"NAXIS1  =")
    big[i: i + 80] = f"NAXIS1  = {10**9:>20}".ljust(80).encode()
    add("naxis_1e9", False, lambda p: p.write_bytes(bytes(big)))
    add("int16_bscale", True, lambda p: fits.PrimaryHDU((good * 10).astype(np.int16)).writeto(p))
    ih = fits.PrimaryHDU((good * 10).astype(np.int16))
    ih.header["BSCALE"], ih.header["BZERO"] = 0.1, 32768
    add("int16_scaled", True, lambda p: ih.writeto(p))
    add("err_shape_mismatch", True, lambda p: fits.HDUList([  # ignored with a reading note, as DS9 shows SCI
        fits.PrimaryHDU(), fits.ImageHDU(good, name="SCI"), fits.ImageHDU(np.ones((10, 10), np.float32),
                                                                          name="ERR")]).writeto(p))
    add("dq_all_bad", False, lambda p: fits.HDUList([
        fits.PrimaryHDU(), fits.ImageHDU(good, name="SCI"), fits.ImageHDU(np.ones(good.shape, np.int16),
                                                                          name="DQ")]).writeto(p))
    add("extver_text", True, lambda p: fits.HDUList([
        fits.PrimaryHDU(), fits.ImageHDU(good, header=fits.Header([("EXTNAME", "SCI"), ("EXTVER", "one")]))])
        .writeto(p, output_verify="silentfix"))
    fifo = d / "fifo.fits"
    os.mkfifo(fifo)
    cases.append(("fifo", fifo, False))
    (d / "folder.fits").mkdir()
    cases.append(("folder", d / "folder.fits", False))
    cases.append(("missing", d / "missing.fits", False))
    return cases


def _checkpoints(d: Path) -> list[tuple[str, Path, bool]]:
    import torch
    from safetensors.torch import save_file

    from galviewer.core.nn.weights import ModelMetadata, load_checkpoint, save_checkpoint
    from tests.helpers import tiny_model

    out: list[tuple[str, Path, bool]] = []
    ok = save_checkpoint(d / "ok.safetensors", tiny_model(), ModelMetadata(name="ok"))
    out.append(("ok", ok, True))
    state, meta = load_checkpoint(ok)
    base = json.loads(meta.to_json())
    edits = {
        "dim_20000": ("config", "dim", 20000), "blocks_2e6": ("config", "num_blocks", [1, 1, 1, 2000000]),
        "params_over_cap": ("config", "num_blocks", [64, 64, 64, 64]), "dim_mismatch": ("config", "dim", 256),
        "sha_blank": (None, "weights_sha256", ""), "sha_wrong": (None, "weights_sha256", "0" * 64),
        "extra_list": (None, "extra", [1]), "psf_text": (None, "psf_fwhm_pix", "abc"),
        "psf_negative": (None, "psf_fwhm_pix", -2.0), "noise_range_bad": (None, "noise_rms_range", [1]),
        "unknown_key": (None, "evil", 1), "format_future": (None, "format_version", 99),
        "heads_text": ("config", "heads", "abcd"), "ffn_bool": ("config", "ffn_expansion_factor", True),
    }
    for name, (section, key, value) in edits.items():
        doc = json.loads(json.dumps(base))
        (doc[section] if section else doc)[key] = value
        if name == "params_over_cap":
            doc["config"]["dim"] = 512
        p = d / f"{name}.safetensors"
        save_file(state, str(p), metadata={"galviewer": json.dumps(doc), "format": "pt"})
        out.append((name, p, False))
    p = d / "not_json.safetensors"
    save_file(state, str(p), metadata={"galviewer": "{not json", "format": "pt"})
    out.append(("not_json", p, False))
    big = dict(tiny_model().state_dict())
    big["encoder_level1.3000000.attn.temperature"] = torch.ones(1, 1, 1)
    torch.save({"params": big}, d / "block_3e6.pth")
    out.append(("block_3e6_pth", d / "block_3e6.pth", False))
    nan = dict(tiny_model().state_dict())
    nan["output.weight"] = torch.full_like(nan["output.weight"], float("nan"))
    torch.save({"params": nan}, d / "nan.pth")
    out.append(("nan_weights", d / "nan.pth", False))
    loud = tiny_model()
    with torch.no_grad():
        loud.output.weight.fill_(3e38)
    out.append(("inf_output", save_checkpoint(d / "inf_output.safetensors", loud, ModelMetadata(name="loud")), False))

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {d / 'PWNED'}",))

    torch.save({"params": {"x": Evil()}}, d / "evil.pth")
    out.append(("pickle_code", d / "evil.pth", False))
    (d / "garbage.safetensors").write_bytes(os.urandom(4096))
    out.append(("garbage", d / "garbage.safetensors", False))
    (d / "garbage.pth").write_bytes(os.urandom(4096))
    out.append(("garbage_pth", d / "garbage.pth", False))
    return out


def _catalogues(d: Path) -> list[tuple[str, Path, bool]]:
    from astropy.table import Table

    out = []

    def add(name: str, table: Table, valid: bool) -> None:
        p = d / f"{name}.ecsv"
        table.write(p)
        out.append((name, p, valid))

    add("ok", Table({"id": [1, 2], "x": [48.0, 40.0], "y": [48.0, 50.0]}), True)
    add("duplicate_ids", Table({"id": [7, 7, 7], "x": [48.0, 40.0, 50.0], "y": [48.0, 50.0, 44.0]}), True)
    add("path_label", Table({"id": ["a/../../escaped_a"], "x": [48.0], "y": [48.0]}), True)
    add("non_numeric", Table({"x": ["a", "b"], "y": [1.0, 2.0]}), False)
    add("nan_position", Table({"x": [np.nan, 48.0], "y": [48.0, 48.0]}), False)
    add("outside", Table({"x": [1e9], "y": [48.0]}), False)
    add("no_columns", Table({"u": [1.0], "v": [2.0]}), False)
    (d / "bad.reg").write_text("# Region file format: DS9\nimage\ncircle(48,48,\n")
    out.append(("bad_region", d / "bad.reg", False))
    (d / "broken.ecsv").write_text("# %ECSV 1.0\n# ---\n# datatype: [{name: x\n")
    out.append(("broken_ecsv", d / "broken.ecsv", False))
    return out


def _run(args: list[str], timeout: float) -> tuple[str, subprocess.CompletedProcess | None]:
    try:
        r = subprocess.run([sys.executable, "-m", "galviewer.cli", *args], capture_output=True, text=True,
                           timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "hang", None
    if "Traceback" in r.stderr:
        return "traceback", r
    return ("ok" if r.returncode == 0 else "named" if r.stderr.startswith("galviewer") or
            "galviewer: error" in r.stderr else "traceback"), r


def _finite_fits(path: Path) -> bool:
    with fits.open(path) as h:
        return all(hdu.data is None or np.isfinite(hdu.data).all() for hdu in h)


def main() -> None:
    """Build the corpus, run it, write the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    rows: dict[str, dict[str, int]] = {}
    details: list[str] = []

    def tally(family: str, case: str, valid: bool, outcome: str, r, check: Callable[[], bool] | None = None) -> None:
        def passes() -> bool:
            try:
                return check is None or bool(check())
            except Exception:  # a check that cannot even read the output: the output is wrong
                return False

        if outcome == "ok" and (not valid or not passes()):
            outcome = "silent-wrong"
        elif outcome == "named" and valid:
            outcome = "named (valid input refused)"
        fam = rows.setdefault(family, {})
        fam[outcome] = fam.get(outcome, 0) + 1
        if outcome not in ("ok", "named"):
            details.append(f"| {family} | {case} | {outcome} | {(r.stderr if r else '')[-160:]!r} |")

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "ck").mkdir()
        checkpoints = _checkpoints(d / "ck")
        model = checkpoints[0][1]
        for name, path, valid in _fits_cases(d):
            outcome, r = _run(["info", str(path), "--json"], args.timeout)
            tally("FITS × info --json", name, valid or name in _INFO_ONLY | {"pixel_3e38"}, outcome, r,
                  lambda r=r: json.loads(r.stdout, parse_constant=lambda c: 1 / 0) is not None)
            out = d / f"out_{name}.fits"
            outcome, r = _run(["restore", str(path), "--xy", "48", "48", "-o", str(out), "--model", str(model),
                               "--no-uncertainty"], args.timeout)
            # the 3e38 pixel at (5, 5) lies outside the 64² stamp around (48, 48): a valid restoration
            tally("FITS × restore --xy", name, valid or name == "pixel_3e38", outcome, r,
                  lambda out=out: out.exists() and _finite_fits(out))
        img = d / "good.fits"
        before = img.read_bytes()
        for name, path, valid in checkpoints:
            out = d / f"ck_{name}.fits"
            outcome, r = _run(["restore", str(img), "--xy", "48", "48", "-o", str(out), "--model", str(path),
                               "--no-uncertainty"], args.timeout)
            tally("checkpoint × restore --model", name, valid, outcome, r,
                  lambda out=out: out.exists() and _finite_fits(out))
        if (d / "ck" / "PWNED").exists():
            details.append("| checkpoint | pickle_code | CODE EXECUTED | |")
        for name, path, valid in _catalogues(d):
            outdir = d / f"cat_{name}" / "o"
            outcome, r = _run(["restore", str(img), "--catalog", str(path), "-o", str(outdir), "--model", str(model),
                               "--no-uncertainty"], args.timeout)
            if outcome == "named" and r is not None and r.returncode == 1 and not valid:
                outcome = "named"  # a partial run that names its failures
            tally("catalogue × restore --catalog", name, valid, outcome, r,
                  lambda outdir=outdir, path=path: bool(list(outdir.glob("*.fits")))
                  and all(p.parent == outdir for p in outdir.parent.rglob("*.fits"))
                  and len(list(outdir.glob("*.fits"))) == len(__import__("astropy.table").table.Table.read(path)))
        odd = {
            "size_4000": (["restore", str(img), "--xy", "48", "48", "--size", "4000", "-o", str(d / "s.fits")], False),
            "size_0": (["restore", str(img), "--xy", "48", "48", "--size", "0", "-o", str(d / "s.fits")], False),
            "xy_nan": (["restore", str(img), "--xy", "nan", "48", "-o", str(d / "s.fits")], False),
            "xy_outside": (["restore", str(img), "--xy", "-500", "48", "-o", str(d / "s.fits")], False),
            "output_is_input": (["restore", str(img), "--xy", "48", "48", "-o", str(img), "--overwrite"], False),
            "detect_over_input": (["detect", str(img), "-o", str(img), "--overwrite"], False),
            "output_folder_missing": (["restore", str(img), "--xy", "48", "48", "-o", str(d / "no" / "x.fits")],
                                      False),
            "ext_missing": (["info", str(img), "--ext", "SCI,9"], False),
            "ext_malformed": (["info", str(img), "--ext", "SCI,x"], False),
            "device_bogus": (["restore", str(img), "--xy", "48", "48", "-o", str(d / "s.fits"), "--device", "tpu"],
                             False),
            "model_unknown": (["restore", str(img), "--xy", "48", "48", "-o", str(d / "s.fits"), "--model", "nope"],
                              False),
            "psf_fwhm_negative": (["measure", str(img), "--xy", "48", "48", "--psf-fwhm", "-1"], False),
            "max_sources_0": (["detect", str(img), "-o", str(d / "c.ecsv"), "--max-sources", "0"], False),
            "nsigma_nan": (["detect", str(img), "-o", str(d / "c.ecsv"), "--nsigma", "nan"], False),
        }
        for name, (argv, valid) in odd.items():
            outcome, r = _run(argv if "--model" in argv or argv[0] != "restore" else [*argv, "--model", str(model)],
                              args.timeout)
            tally("CLI arguments", name, valid, outcome, r)
        if img.read_bytes() != before:
            details.append("| CLI arguments | - | INPUT OVERWRITTEN | |")
    kinds = ["ok", "named", "traceback", "hang", "silent-wrong", "named (valid input refused)"]
    lines = ["| family | tried | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 2) + "|"]
    totals = dict.fromkeys(kinds, 0)
    for fam, counts in rows.items():
        for k in kinds:
            totals[k] += counts.get(k, 0)
        lines.append(f"| {fam} | {sum(counts.values())} | " + " | ".join(str(counts.get(k, 0)) for k in kinds) + " |")
    lines.append(f"| **all** | {sum(totals.values())} | " + " | ".join(str(totals[k]) for k in kinds) + " |")
    if details:
        lines += ["", "| family | case | outcome | stderr (end) |", "|---|---|---|---|", *details]
    write_table(Path(__file__).parent / "results" / "hostile.md", lines)


if __name__ == "__main__":
    main()
