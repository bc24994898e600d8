"""Training loop (METHOD §2): AdamW, L1, cosine learning rate, validation, exact resume, DDP.

Files in the run folder:

``state.pt``            model, optimiser, scheduler, iteration, best score (``torch.load(weights_only=True)``)
``best.safetensors``    the best model by validation PSNR, in galviewer's checkpoint format
``last.safetensors``    the latest model
``log.csv``             one row per logged iteration
``curves.png``          loss and validation PSNR
``config.toml``         the configuration used
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from galviewer._atomic import atomic_write
from galviewer.core.measure.metrics import psnr, ssim
from galviewer.core.nn.restormer import Restormer, RestormerConfig
from galviewer.core.nn.weights import ModelMetadata, load_checkpoint, save_checkpoint
from galviewer.core.psf.instrument import training_psfs
from galviewer.core.restore.engine import choose_device
from galviewer.errors import ParameterError
from trainer.data import DegradeConfig, PairSampler
from trainer.shards import ShardSet

__all__ = ["TrainConfig", "evaluate_pairs", "load_config", "train"]

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass
class TrainConfig:
    """Everything a training run needs; every field can be set in the TOML file or on the command line.

    Attributes
    ----------
    data : str
        Shard folder (``simulate``/``harvest`` output); train split = index mod 10 ≥ 2.
    out : str
        Run folder.
    preset : str
        Model preset (``galaxy``, ``small``, ``tiny``) unless ``init`` gives the architecture.
    init : str
        Checkpoint to start from (transfer learning); empty for random initialisation.
    name : str
        Model name written into the checkpoints.
    iterations, batch_size : int
    lr, lr_min, weight_decay : float
    betas : (float, float)
    val_every, val_count, log_every : int
        Validate every ``val_every`` iterations on ``val_count`` fixed validation pairs.
    seed : int
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:1``…
    threads : int
        CPU threads (0: torch's default).
    degrade : DegradeConfig
    """

    data: str = ""
    out: str = "run"
    preset: str = "small"
    init: str = ""
    name: str = "galviewer-model"
    iterations: int = 1000
    batch_size: int = 16
    lr: float = 3e-4
    lr_min: float = 1e-6
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    val_every: int = 250
    val_count: int = 256
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    degrade: DegradeConfig = field(default_factory=DegradeConfig)

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "val_every", "val_count", "log_every"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ParameterError(name, f"must be a positive integer, got {v!r}")
        for name in ("lr", "lr_min"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v < 1):
                raise ParameterError(name, f"must be in [0, 1), got {v!r}")
        if self.lr_min > self.lr:
            raise ParameterError("lr_min", f"{self.lr_min} exceeds lr {self.lr}")
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        if isinstance(self.degrade, dict):
            self.degrade = _strict(DegradeConfig, self.degrade, "degrade")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (TOML/JSON-serialisable)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["degrade"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["degrade"].items()}
        return d

    def to_toml(self) -> str:
        """The configuration as TOML text."""
        def fmt(v: Any) -> str:
            return json.dumps(v)  # JSON scalars and arrays of numbers are valid TOML
        d = self.to_dict()
        deg = d.pop("degrade")
        lines = [f"{k} = {fmt(v)}" for k, v in d.items()]
        lines += ["", "[degrade]"] + [f"{k} = {fmt(v)}" for k, v in deg.items()]
        return "\n".join(lines) + "\n"


def _strict(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ParameterError(where, f"unknown keys {unknown}; allowed: {sorted(known)}")
    vals = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**vals)


def _noise_span(d: DegradeConfig) -> tuple[float, float]:
    """The LQ noise (rms after min-max) the model is trained on: the uniform range, widened down to the
    log-uniform floor when that draw is used."""
    lo, hi = d.noise_range
    return (min(lo, d.noise_floor) if d.log_noise_fraction > 0 else lo, hi)


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> TrainConfig:
    """Read a TOML config (unknown keys refused), then apply non-None ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            values = tomllib.loads(p.read_text())
        except FileNotFoundError as exc:
            raise ParameterError("config", f"{p}: no such file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ParameterError("config", f"{p}: invalid TOML ({exc})") from exc
    deg = dict(values.pop("degrade", {}))
    for k, v in list(overrides.items()):
        if v is None:
            continue
        if k.startswith("degrade_"):
            deg[k[len("degrade_"):]] = v
        else:
            values[k] = v
    values["degrade"] = _strict(DegradeConfig, deg, "degrade")
    return _strict(TrainConfig, values, "config")


# --------------------------------------------------------------------------------------------- helpers


def _atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp), overwrite=True)


@torch.no_grad()
def evaluate_pairs(model: torch.nn.Module, lq: torch.Tensor, gt: torch.Tensor, device: torch.device,
                   batch: int = 64) -> dict[str, float]:
    """Mean PSNR/SSIM of LQ and of the model's output against GT (all min-max normalised)."""
    model.eval()
    outs = []
    for s in range(0, len(lq), batch):
        outs.append(model(lq[s:s + batch].to(device)).float().cpu())
    rs = torch.cat(outs)[:, 0].numpy()
    g = gt[:, 0].numpy()
    q = lq[:, 0].numpy()
    return {
        "psnr_rs": float(np.mean([psnr(a, b) for a, b in zip(g, rs, strict=True)])),
        "ssim_rs": float(np.mean([ssim(a, b, data_range=1.0) for a, b in zip(g, rs, strict=True)])),
        "psnr_lq": float(np.mean([psnr(a, b) for a, b in zip(g, q, strict=True)])),
        "ssim_lq": float(np.mean([ssim(a, b, data_range=1.0) for a, b in zip(g, q, strict=True)])),
    }


def _plot(log_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    it = np.array([int(r["iteration"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    val = [(int(r["iteration"]), float(r["val_psnr"])) for r in rows if r["val_psnr"]]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].semilogy(it, loss, lw=0.8)
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("L1 loss")
    if val:
        v = np.array(val)
        ax[1].plot(v[:, 0], v[:, 1], "o-")
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel("validation PSNR (dB)")
    fig.tight_layout()
    try:
        atomic_write(png, lambda tmp: fig.savefig(tmp, dpi=90, format="png"), overwrite=True)
    finally:
        plt.close(fig)


def _fmt_time(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _start_log(log_path: Path, start: int) -> None:
    """Begin ``log.csv`` at iteration ``start``: a fresh run writes the header; a resumed one drops the rows
    logged after its saved state (they are logged again as training repeats those iterations)."""
    rows: list[dict[str, str]] = []
    if start > 0 and log_path.exists():
        with log_path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if (r.get("iteration") or "").isdigit()
                    and int(r["iteration"]) <= start]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    atomic_write(log_path, write, overwrite=True)


LOG_FIELDS = ["iteration", "loss", "lr", "it_per_s", "val_psnr", "val_ssim", "val_psnr_lq", "val_ssim_lq"]


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    stop_at: int | None = None,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Run (or resume) training.

    Parameters
    ----------
    config : TrainConfig
    resume : bool
        Continue from ``out/state.pt``; refused if the saved configuration differs.
    stop_at : int, optional
        Stop (saving the state) when the iteration counter reaches this value, keeping the
        learning-rate schedule of ``config.iterations`` — for time-boxed runs; resuming later continues it.
    echo : callable, optional
        Receives progress lines (default: print to stderr from rank 0).

    Returns
    -------
    pathlib.Path
        The run folder.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and config.device != "cpu" else "gloo"
        torch.distributed.init_process_group(backend)
    if echo is None:
        def echo(msg: str) -> None:
            if rank == 0:
                print(msg, file=sys.stderr, flush=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = choose_device(config.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    out = Path(config.out)
    state_path = out / "state.pt"
    if state_path.exists() and not resume:
        raise ParameterError("out", f"{out} already holds a run (state.pt); pass --resume or choose another folder")
    if resume and not state_path.exists():
        raise ParameterError("resume", f"{state_path}: nothing to resume")
    shards = ShardSet(config.data)
    sampler = PairSampler(shards, "train", config.degrade, seed=config.seed)
    val_sampler = PairSampler(shards, "val", config.degrade, seed=config.seed)
    val_lq, val_gt, _ = val_sampler.fixed(config.val_count)

    init_meta: ModelMetadata | None = None
    if config.init:
        state, init_meta = load_checkpoint(config.init)
        model = Restormer(init_meta.config)
        model.load_state_dict(state)
    else:
        torch.manual_seed(config.seed)
        model = Restormer(RestormerConfig.from_preset(config.preset))
    model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.iterations, eta_min=config.lr_min)
    start, best = 0, -math.inf
    if resume:
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        if json.loads(saved["config"]) != json.loads(json.dumps(config.to_dict())):
            old = json.loads(saved["config"])
            diff = sorted(k for k in old if old.get(k) != config.to_dict().get(k))
            raise ParameterError("resume", f"{state_path}: the saved run used a different configuration ({diff})")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        start, best = int(saved["iteration"]), float(saved["best_psnr"])
        torch.set_rng_state(saved["torch_rng"])
        echo(f"resumed {out} at iteration {start}")
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config.to_toml())
    log_path = out / "log.csv"
    if rank == 0:
        _start_log(log_path, start if resume else 0)

    meta = ModelMetadata(
        name=config.name, config=model.config, normalisation="minmax", pixel_scale_arcsec=0.05,
        psf_fwhm_pix=float(np.mean(config.degrade.fwhm_range)), noise_rms_range=_noise_span(config.degrade),
        training_data=f"{shards.kind} shards {shards.path.name} ({len(shards)} stamps)"
        + (f"; initialised from {Path(config.init).name} ({init_meta.training_data})" if init_meta else ""),
        extra={"train_config": config.to_dict(), "gt_psf_fwhm_pix": shards.manifest.get("gt_psf_fwhm_pix"),
               "previous_iterations": init_meta.iterations if init_meta else 0,
               **({"real_psfs": training_psfs(), "real_psf_fwhm_pix": list(config.degrade.real_psf_fwhm)}
                  if config.degrade.real_psf_fraction > 0 else {})},
    )

    def save_state(it: int) -> None:
        if rank != 0:
            return
        _atomic_torch_save({
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "iteration": torch.tensor(it), "best_psnr": torch.tensor(best), "config": json.dumps(config.to_dict()),
            "torch_rng": torch.get_rng_state(),
        }, state_path)
        save_checkpoint(out / "last.safetensors", model, dataclasses.replace(meta, iterations=it), overwrite=True)

    t0 = time.perf_counter()
    done_here = 0
    it = start
    per_rank = config.batch_size // world
    end = config.iterations if stop_at is None else min(config.iterations, stop_at)
    while it < end:
        net.train()
        lq, gt = sampler.batch(it, config.batch_size, rank, world)
        lq, gt = lq.to(device), gt.to(device)
        if device.type == "cpu":
            lq = lq.contiguous(memory_format=torch.channels_last)
        loss = F.l1_loss(net(lq), gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        it += 1
        done_here += 1
        if not math.isfinite(loss.item()):
            raise ParameterError("lr", f"the loss became {loss.item()} at iteration {it}; lower the learning rate")
        row: dict[str, Any] = {}
        if it % config.log_every == 0 or it == config.iterations:
            rate = done_here / (time.perf_counter() - t0)
            row = {"iteration": it, "loss": f"{loss.item():.6g}", "lr": f"{sched.get_last_lr()[0]:.4g}",
                   "it_per_s": f"{rate:.3f}"}
            echo(f"it {it}/{config.iterations}  loss {loss.item():.5f}  lr {sched.get_last_lr()[0]:.2e}  "
                 f"{rate:.2f} it/s ({rate * per_rank * world:.0f} stamps/s)  "
                 f"ETA {_fmt_time((config.iterations - it) / rate)}")
        if rank == 0 and (it % config.val_every == 0 or it == config.iterations):
            m = evaluate_pairs(model, val_lq, val_gt, device)
            row.update({"iteration": it, "val_psnr": f"{m['psnr_rs']:.4f}", "val_ssim": f"{m['ssim_rs']:.4f}",
                        "val_psnr_lq": f"{m['psnr_lq']:.4f}", "val_ssim_lq": f"{m['ssim_lq']:.4f}"})
            row.setdefault("loss", f"{loss.item():.6g}")
            echo(f"validation at {it}: PSNR {m['psnr_rs']:.2f} dB (LQ {m['psnr_lq']:.2f}), "
                 f"SSIM {m['ssim_rs']:.3f} (LQ {m['ssim_lq']:.3f})")
            if m["psnr_rs"] > best:
                best = m["psnr_rs"]
                save_checkpoint(out / "best.safetensors", model, dataclasses.replace(
                    meta, iterations=it, metrics={"val_" + k: round(v, 4) for k, v in m.items()}), overwrite=True)
        if rank == 0 and row:
            with log_path.open("a", newline="") as f:
                csv.DictWriter(f, LOG_FIELDS).writerow(row)
        if rank == 0 and it % config.val_every == 0:
            save_state(it)
            _plot(log_path, out / "curves.png")
    save_state(it)
    if rank == 0:
        _plot(log_path, out / "curves.png")
    if world > 1:
        torch.distributed.barrier()
    return out
