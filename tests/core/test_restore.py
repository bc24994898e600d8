import threading

import numpy as np
import pytest
import torch

from galviewer import Restorer, cutout
from galviewer.core.nn.restormer import RestormerConfig
from galviewer.core.nn.weights import ModelMetadata
from galviewer.core.psf.degrade import convolve, degrade
from galviewer.core.restore.engine import dihedral
from galviewer.errors import ParameterError, RestoreCancelled, RestoreError, WeightsError
from tests.helpers import galaxy, tiny_model


class Oracle(torch.nn.Module):
    """A stand-in network that returns a fixed image (the min-max normalised truth)."""

    def __init__(self, target: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("target", torch.tensor(target, dtype=torch.float32))
        self.config = RestormerConfig.from_preset("tiny")

    def forward(self, x):
        return self.target.expand(x.shape[0], 1, *self.target.shape).clone()


def _field(n=64, noise=0.0, seed=0, bkg=5.0):
    gt = bkg + galaxy((n, n), n // 2, n // 2, flux=2000.0, r=1.5, q=0.7, theta=0.3)
    d = degrade(gt, noise_rms=noise, rng=np.random.default_rng(seed))
    return gt, d.lq


def _minmax(a):
    return (a - a.min()) / (a.max() - a.min())


def test_paper_rescaling_recovers_physical_units_exactly_without_noise():
    gt, lq = _field()
    r = Restorer(Oracle(_minmax(gt)), ModelMetadata(psf_fwhm_pix=1.88), "cpu")
    res = r.restore(lq, uncertainty=False)
    assert res.meta["rescale"] == "paper"
    assert np.allclose(res.data, gt, rtol=1e-3, atol=1e-3)
    assert res.scale == pytest.approx(np.ptp(gt), rel=1e-3)
    assert res.offset == pytest.approx(gt.min(), abs=1e-2)
    assert np.abs(res.residual).max() < 1e-2 * lq.max()


def test_paper_rescaling_with_noise_keeps_flux_within_3_percent():
    gt, lq = _field(noise=0.5)
    r = Restorer(Oracle(_minmax(gt)), ModelMetadata(psf_fwhm_pix=1.88), "cpu")
    res = r.restore(lq, uncertainty=False)
    true_flux = (gt - 5.0).sum()
    flux = (res.data - res.offset - res.scale * 0).sum() - (gt.min() - 5.0) * gt.size
    assert flux == pytest.approx(true_flux, rel=0.03)
    assert res.data.max() == pytest.approx(gt.max(), rel=0.05)
    lst = r.restore(lq, uncertainty=False, rescale="lstsq")
    assert lst.data.max() == pytest.approx(gt.max(), rel=0.05)
    mm = r.restore(lq, uncertainty=False, rescale="minmax")
    assert mm.scale == pytest.approx(np.ptp(lq))


def test_restoration_fields_and_uncertainty():
    _, lq = _field(noise=0.3)
    r = Restorer(tiny_model(), ModelMetadata(name="tiny"), "cpu")
    res = r.restore(lq * 1000.0)  # any units
    for arr in (res.data, res.normalized, res.sigma, res.residual, res.model_input):
        assert arr.shape == lq.shape and arr.dtype == np.float32 and np.isfinite(arr).all()
    assert res.sigma.min() >= 0 and res.sigma.max() > 0
    assert res.model_input.min() == 0 and res.model_input.max() == pytest.approx(1.0)
    assert np.allclose(res.residual, res.lq - convolve(res.data, res.psf), atol=1e-2)
    assert res.meta["model"] == "tiny" and res.meta["device"] == "cpu" and res.meta["seconds"] > 0
    # the network's answer rescaled; by default then anchored to the data's large scales (a smooth correction)
    plain = r.restore(lq * 1000.0, anchor=0)
    assert plain.meta["anchor"] is None and res.meta["anchor"]["scale"] == 2.0
    assert np.allclose(plain.data, plain.scale * plain.normalized + plain.offset, rtol=1e-5, atol=1e-2)
    assert np.array_equal(plain.normalized, res.normalized) and not np.array_equal(plain.data, res.data)
    no = r.restore(lq * 1000.0, uncertainty=False)
    assert no.sigma is None


def test_dihedral_inverse():
    x = np.arange(12.0).reshape(3, 4)
    for k in range(8):
        assert np.array_equal(dihedral(dihedral(x, k), k, inverse=True), x)
    assert len({dihedral(x, k).tobytes() + bytes(dihedral(x, k).shape) for k in range(8)}) == 8


def test_tiled_equals_untiled_and_has_no_seams():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 0.05, (256, 256))
    for x, y in [(60, 70), (128, 128), (200, 40), (190, 210)]:
        img += galaxy((256, 256), x, y, flux=200.0, r=2.0)
    model = tiny_model(1, "small")
    whole = Restorer(model, ModelMetadata(), "cpu", memory_budget_mb=4096).restore(img, uncertainty=False)
    tiled_r = Restorer(model, ModelMetadata(), "cpu", memory_budget_mb=60)  # 136-px tiles, 3x3 of them
    calls = []
    tiled = tiled_r.restore(img, uncertainty=False, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) > 4 and calls[-1][0] == calls[-1][1]  # really tiled, progress complete
    diff = np.abs(tiled.normalized - whole.normalized)
    # Stated tolerance, in units of the output's range (MDTA attention is global over a tile, so
    # tiles cannot match exactly): mean |diff| < 1 %, max < 7 % (random-weight small model).
    span = np.ptp(whole.normalized)
    assert diff.mean() < 0.01 * span and diff.max() < 0.07 * span
    # No seams: no column/row step in the tiled result is more than 1.5x the largest step of the untiled one.
    for axis in (0, 1):
        steps_t = np.abs(np.diff(tiled.normalized, axis=axis)).max()
        steps_w = np.abs(np.diff(whole.normalized, axis=axis)).max()
        assert steps_t < 1.5 * steps_w
        # The tiling error has no edges: its mean step per row/column is nowhere far above the typical one.
        prof = np.abs(np.diff(tiled.normalized - whole.normalized, axis=axis)).mean(axis=1 - axis)
        assert prof.max() < 3.0 * np.median(prof)


def test_restore_many_matches_single_and_is_batched():
    r = Restorer(tiny_model(), ModelMetadata(), "cpu", batch_size=8)
    stamps = [_field(noise=0.2, seed=s)[1] for s in range(5)]
    calls = []
    many = r.restore_many(stamps, uncertainty=False, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 1)]  # five stamps in one forward pass
    calls.clear()
    r.restore_many(stamps, 2, progress=lambda d, t: calls.append((d, t)))  # 8 variants each, 2 per pass
    assert calls[-1] == (20, 20) and len(calls) == 20
    for st, res in zip(stamps, many, strict=True):
        one = r.restore(st, uncertainty=False)
        assert np.allclose(one.data, res.data, rtol=1e-4, atol=1e-4)


def test_cancel_and_progress():
    r = Restorer(tiny_model(), ModelMetadata(), "cpu", batch_size=1)
    ev = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        ev.set()

    with pytest.raises(RestoreCancelled):
        r.restore_many([_field(seed=s)[1] for s in range(4)], uncertainty=False, progress=progress, cancel=ev)
    assert seen == [1]


def test_thread_safety():
    r = Restorer(tiny_model(), ModelMetadata(), "cpu")
    imgs = [_field(noise=0.2, seed=s)[1] for s in range(4)]
    expected = [r.restore(im).data for im in imgs]
    out = [None] * 4

    def work(i):
        out[i] = r.restore(imgs[i]).data

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(out, expected, strict=True):
        assert np.array_equal(a, b)


def test_restores_a_stamp_and_keeps_it(tmp_path):
    img = galaxy((100, 100), 50, 50, flux=1000.0) + np.random.default_rng(0).normal(0, 0.01, (100, 100))
    st = cutout(img, 51, 49)
    res = Restorer(tiny_model(), ModelMetadata(), "cpu").restore(st)
    assert res.stamp is st and res.data.shape == (64, 64)


def test_bad_inputs():
    r = Restorer(tiny_model(), ModelMetadata(), "cpu")
    with pytest.raises(RestoreError, match="constant"):
        r.restore(np.ones((32, 32)))
    with pytest.raises(ParameterError, match="image"):
        r.restore(np.zeros((0, 3)))
    with pytest.raises(ParameterError, match="rescale"):
        r.restore(np.random.default_rng(0).random((16, 16)), rescale="magic")
    with pytest.raises(ParameterError, match="device"):
        Restorer(tiny_model(), ModelMetadata(), "quantum")
    with pytest.raises(ParameterError, match="memory_budget_mb"):
        Restorer(tiny_model(), ModelMetadata(), "cpu", memory_budget_mb=0)


def test_from_file_and_from_pretrained(tiny_ckpt):
    r = Restorer.from_file(tiny_ckpt, "cpu")
    assert r.model_sha256 and r.name == "tiny-random"
    with pytest.raises(WeightsError, match=r"no shipped model 'no-such-model'"):
        Restorer.from_pretrained("no-such-model", "cpu")
