import csv
import os
import subprocess
import sys

import pytest
import torch

from galviewer.core.nn.weights import load_checkpoint
from galviewer.core.restore.engine import Restorer
from galviewer.errors import ParameterError
from trainer.cli import main
from trainer.train import TrainConfig, load_config, train


def _cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), preset="tiny", iterations=4, batch_size=4, val_every=2, val_count=8,
                log_every=1, threads=1, device="cpu")
    base.update(kw)
    return load_config(None, **base)


def test_training_writes_a_loadable_model_and_resumes_exactly(sersic_shards, tmp_path):
    a = train(_cfg(sersic_shards, tmp_path / "a"), echo=lambda m: None)
    b_cfg = _cfg(sersic_shards, tmp_path / "b")
    train(b_cfg, stop_at=2, echo=lambda m: None)  # "killed" after 2 iterations
    with pytest.raises(ParameterError, match="--resume"):
        train(b_cfg, echo=lambda m: None)
    train(b_cfg, resume=True, echo=lambda m: None)
    sa, ma = load_checkpoint(a / "last.safetensors")
    sb, mb = load_checkpoint(tmp_path / "b" / "last.safetensors")
    assert ma.iterations == mb.iterations == 4
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with (a / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss"]) > 0 for r in rows) and rows[1]["val_psnr"] and rows[3]["val_ssim"]
    assert (a / "curves.png").stat().st_size > 1000
    best = Restorer.from_file(a / "best.safetensors", "cpu")
    assert "val_psnr_rs" in best.metadata.metrics
    assert best.metadata.extra["gt_psf_fwhm_pix"] == pytest.approx(1.3)
    # transfer learning: --init starts from those weights and records where they came from
    c = train(_cfg(sersic_shards, tmp_path / "c", init=str(a / "best.safetensors"), iterations=2),
              echo=lambda m: None)
    _, mc = load_checkpoint(c / "last.safetensors")
    assert "initialised from best.safetensors" in mc.training_data


def test_resume_refuses_a_changed_configuration(sersic_shards, tmp_path):
    train(_cfg(sersic_shards, tmp_path / "r", iterations=2), echo=lambda m: None)
    with pytest.raises(ParameterError, match="different configuration"):
        train(_cfg(sersic_shards, tmp_path / "r", iterations=2, lr=1e-4), resume=True, echo=lambda m: None)


def test_config_file_is_strict_and_round_trips(tmp_path):
    cfg = TrainConfig(data="d", out="o", iterations=7)
    f = tmp_path / "c.toml"
    f.write_text(cfg.to_toml())
    again = load_config(f)
    assert again.to_dict() == cfg.to_dict()
    f.write_text(cfg.to_toml() + "\nlearning_rate = 0.1\n")
    with pytest.raises(ParameterError, match="learning_rate"):
        load_config(f)
    f.write_text("[degrade]\nsigma = 1\n")
    with pytest.raises(ParameterError, match="degrade"):
        load_config(f)
    with pytest.raises(ParameterError, match="iterations"):
        load_config(None, iterations=0)


def test_cli_end_to_end_and_help(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["simulate", "sersic", "-n", "20", "-o", str(data), "--seed", "1"]) == 0
    assert main(["simulate", "sersic", "-n", "20", "-o", str(data)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--iterations", "2", "--batch-size", "2", "--val-every", "2", "--val-count", "2",
                 "--device", "cpu", "--noise-range", "0.02", "0.05"]) == 0
    assert (tmp_path / "run" / "best.safetensors").exists()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for opt in ("--init", "--resume", "--noise-range", "--fwhm-range", "--val-every", "--config"):
        assert opt in text


@pytest.mark.slow
def test_data_parallel_with_two_gloo_processes_matches_one_process(sersic_shards, tmp_path):
    common = ["train", "--data", str(sersic_shards), "--preset", "tiny", "--iterations", "2", "--batch-size", "4",
              "--val-every", "2", "--val-count", "4", "--device", "cpu", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "trainer.cli", *common, "--out", str(tmp_path / "ddp")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main([*common, "--out", str(tmp_path / "single")]) == 0
    sd, _ = load_checkpoint(tmp_path / "ddp" / "last.safetensors")
    ss, _ = load_checkpoint(tmp_path / "single" / "last.safetensors")
    assert max(float((sd[k] - ss[k]).abs().max()) for k in sd) < 1e-5


def test_resume_after_a_kill_does_not_repeat_log_rows(sersic_shards, tmp_path):
    cfg = _cfg(sersic_shards, tmp_path / "k")
    train(cfg, stop_at=2, echo=lambda m: None)
    log = tmp_path / "k" / "log.csv"
    with log.open("a", newline="") as f:  # a run killed after logging iteration 3, before saving its state
        csv.writer(f).writerow([3, "0.5", "1e-4", "1.0", "", "", "", ""])
    (tmp_path / "k" / f".log.csv.{2**22 + 7}.x.part").write_text("left by a killed writer")
    train(cfg, resume=True, echo=lambda m: None)
    with log.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert rows[2]["loss"] != "0.5"  # the killed run's row was replaced by the resumed run's
    assert not list((tmp_path / "k").glob(".*.part"))


def test_export_writes_the_basicsr_pth_layout_the_authors_code_loads(tmp_path, tiny_ckpt, capsys):
    from galviewer.core.nn.weights import load_model, state_dict_allclose

    out = tmp_path / "net_g.pth"
    assert main(["export", str(tiny_ckpt), "--format", "pth", "-o", str(out)]) == 0
    obj = torch.load(out, map_location="cpu", weights_only=True)
    assert list(obj) == ["params"] and all(isinstance(v, torch.Tensor) for v in obj["params"].values())
    ref, _ = load_model(tiny_ckpt)
    back, meta = load_model(out)
    assert meta.config == ref.config and state_dict_allclose(ref.state_dict(), back.state_dict())
    assert main(["export", str(tiny_ckpt), "--format", "pth", "-o", str(out)]) == 2  # never clobbers
    assert "file exists" in capsys.readouterr().err
