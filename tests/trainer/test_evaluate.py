import json

import numpy as np
import pytest

from galviewer.core.measure import psnr
from galviewer.core.restore.engine import Restorer
from galviewer.errors import ParameterError
from trainer.cli import main
from trainer.evaluate import _fair, baseline, tune_baselines


@pytest.mark.slow
def test_simulate_train_evaluate_end_to_end(tmp_path, capsys):
    """The CI path of the trainer: simulate 64 stamps → train 5 iterations → evaluate → a loadable checkpoint."""
    data, run, rep = tmp_path / "data", tmp_path / "run", tmp_path / "report"
    assert main(["simulate", "realistic", "-n", "64", "-o", str(data), "--seed", "3"]) == 0
    assert main(["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--iterations", "5",
                 "--batch-size", "4", "--val-every", "5", "--val-count", "4", "--device", "cpu"]) == 0
    ckpt = run / "best.safetensors"
    restored = Restorer.from_file(ckpt, "cpu").restore(np.random.default_rng(0).normal(size=(64, 64)))
    assert restored.data.shape == (64, 64)
    args = ["evaluate", str(ckpt), "--data", str(data), "-o", str(rep), "--count", "6", "--morph-count", "2",
            "--stars", "4", "--blank-seeds", "1", "--blank-per-seed", "3", "--tune-count", "4", "--device", "cpu"]
    assert main(args) == 0
    res = json.loads((rep / "metrics.json").read_text())
    assert set(res["table1"]) == {"LQ", "RS", "RS app", "RL", "Wiener"}  # RS app: in the input's units
    assert all(np.isfinite(v["psnr"]) for v in res["table1"].values())
    assert set(res["noise_sweep"]) == {"0.001", "0.003", "0.01", "0.03", "0.05", "0.1", "0.15"}  # issue 11: bright
    assert res["blank"]["stamps"] == 3 and res["point_sources"]["GT"] > 1.0
    rep_c = tmp_path / "report_consistency"  # the model followed by the anchoring and the data-consistency step
    assert main([*args[:5], str(rep_c), *args[6:], "--consistency", "--anchor", "2"]) == 0
    res_c = json.loads((rep_c / "metrics.json").read_text())
    assert res_c["model_name"].endswith("+ anchoring σ 2 px + consistency") and res_c["config"]["consistency"] is True
    assert res_c["config"]["anchor"] == 2.0
    assert res_c["table1"]["LQ"] == res["table1"]["LQ"] and res_c["table1"]["RS"] != res["table1"]["RS"]
    assert res_c["table1"]["RS app"] != res["table1"]["RS app"]
    assert (rep / "morphology.png").stat().st_size > 1000
    text = (rep / "report.md").read_text()
    assert "Table 1" in text and "Richardson" in text and "pseudo-sources" in text and "| RS app |" in text
    assert main(args) == 2  # never overwrites a report silently
    assert "already holds a report" in capsys.readouterr().err
    shipped = tmp_path / "shipped.safetensors"
    assert main(["export", str(ckpt), "--metrics", str(rep / "metrics.json"), "--name", "ci-model", "--fp16",
                 "-o", str(shipped)]) == 0
    r = Restorer.from_file(shipped, "cpu")
    assert r.name == "ci-model" and r.metadata.metrics["table1"]["RS"]["psnr"] == res["table1"]["RS"]["psnr"]
    assert next(iter(r.model.parameters())).dtype.is_floating_point


def test_fair_baselines_deconvolve_and_are_tuned():
    import galsim

    from galviewer.core.psf.degrade import degrade

    gt = galsim.Convolve(galsim.Exponential(half_light_radius=3.0), galsim.Gaussian(fwhm=1.3)).drawImage(
        nx=64, ny=64, scale=1.0).array.astype(float) + 0.05  # a background above zero
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(3):
        d = degrade(gt, noise_rms=0.002 * gt.max(), rng=rng)
        pairs.append((gt, d.lq, d.psf))
    best = tune_baselines(pairs)
    norm = lambda x: (x - x.min()) / np.ptp(x)  # noqa: E731
    g = norm(gt - 0.05)
    lq = norm(pairs[0][1])
    for kind in ("rl", "wiener"):
        out = baseline(kind, lq, pairs[0][2], best[kind])
        assert out.min() == 0.0 and out.max() == 1.0
        assert psnr(g, out) > psnr(g, lq) + 3  # sharper and background-fair: clearly better than LQ
    assert _fair(np.full((8, 8), 3.0)).max() == 0.0
    with pytest.raises(ParameterError, match="baseline"):
        baseline("cleanrl", lq, pairs[0][2], 1)
