"""``galviewer-train`` command line: simulate, harvest, train, evaluate, calibrate, export."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from galviewer import __version__
from galviewer.errors import GalviewerError

__all__ = ["build_parser", "main"]


class _UsageError(Exception):
    """A command-line mistake, reported through argparse's error()."""


def _progress(label: str):
    t0 = time.perf_counter()
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - last[0] < 0.5:
            return
        last[0] = now
        rate = done / max(now - t0, 1e-9)
        eta = (total - done) / rate if rate > 0 else 0.0
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total} ({100 * done / total:.0f} %), {rate:.0f}/s, ETA {eta:.0f} s",
              end=end, file=sys.stderr, flush=True)

    return report


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="galviewer-train",
        description="Build galviewer models (Park et al. 2024): simulate GT stamps with GalSim, "
        "train a Restormer on LQ/GT pairs degraded on the fly, evaluate it like the paper.",
    )
    parser.add_argument("--version", action="version", version=f"galviewer-train {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("simulate", help="render GT stamps with GalSim into a shard folder",
                       description="Render 64×64 ground-truth stamps with GalSim. Stamp i depends only on "
                       "(--seed, i). 'sersic': single Sérsic galaxies from a 5-D prior (pre-training set, paper "
                       "§3.2); 'realistic': bulge+disk galaxies with knots, spiral arms, companions, stars and "
                       "blank stamps (fine-tuning set, stand-in for the JWST stamps of §3.3).")
    s.add_argument("kind", choices=["sersic", "realistic"], help="which set to render")
    s.add_argument("-n", "--count", type=int, required=True, help="number of stamps")
    s.add_argument("-o", "--out", required=True, help="shard folder to create")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("-j", "--workers", type=int, default=1, help="worker processes (default 1)")
    s.add_argument("--shard-size", type=int, default=4096, help="stamps per .npy shard (default 4096)")
    s.add_argument("--prior-from", metavar="CATALOG", help="table with columns q,n,flux,r50,noise (e.g. harvest's "
                   "catalog.ecsv); its 5-D gaussian_kde replaces the default prior (sersic only)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing shard folder")

    t = sub.add_parser("train", help="train or fine-tune a model",
                       description="Train a Restormer with AdamW + L1 + cosine learning rate (paper §2.4) on pairs "
                       "degraded on the fly. Options override the TOML --config file; unknown keys are refused. "
                       "Launch with torchrun for data-parallel training.")
    t.add_argument("--config", help="TOML file with TrainConfig keys and a [degrade] table")
    t.add_argument("--data", help="shard folder (train split: index mod 10 >= 2; validation: mod 10 == 1)")
    t.add_argument("--out", help="run folder (state.pt, best/last.safetensors, log.csv, curves.png)")
    t.add_argument("--preset", choices=["galaxy", "small", "tiny"], help="architecture (default small)")
    t.add_argument("--init", metavar="CHECKPOINT", help="start from this checkpoint (transfer learning)")
    t.add_argument("--name", help="model name stored in the checkpoints")
    t.add_argument("--iterations", type=int, help="optimiser steps (default 1000)")
    t.add_argument("--batch-size", type=int, help="global batch (default 16)")
    t.add_argument("--lr", type=float, help="initial learning rate (default 3e-4), cosine-annealed to --lr-min")
    t.add_argument("--lr-min", type=float, help="final learning rate (default 1e-6)")
    t.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 1e-4)")
    t.add_argument("--val-every", type=int, help="validate and checkpoint every N iterations (default 250)")
    t.add_argument("--val-count", type=int, help="validation pairs (default 256)")
    t.add_argument("--log-every", type=int, help="log every N iterations (default 10)")
    t.add_argument("--seed", type=int, help="seed of the data stream and initialisation (default 0)")
    t.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    t.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    t.add_argument("--noise-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="LQ noise rms after min-max, drawn per sample (default 0.01 0.1)")
    t.add_argument("--fwhm-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="LQ PSF FWHM in pixels, drawn per sample (default 1.531 2.237, i.e. σ 0.65–0.95)")
    t.add_argument("--correlated-fraction", type=float, help="fraction of samples with drizzle-like correlated "
                   "noise (default 0)")
    t.add_argument("--point-fraction", type=float, help="fraction of training samples replaced on the fly by a "
                   "point source (GT PSF at a random position in the central 24x24 px; default 0)")
    t.add_argument("--log-noise-fraction", type=float, help="fraction of samples whose noise is drawn "
                   "log-uniformly from --noise-floor to the top of --noise-range (bright sources; default 0)")
    t.add_argument("--noise-floor", type=float, help="bottom of the log-uniform noise draw (default 5e-4)")
    t.add_argument("--real-psf-fraction", type=float, help="fraction of samples blurred by a shipped HST PSF "
                   "(TinyTim ACS/WFC3, empirical WFC3/IR) instead of a Gaussian (default 0)")
    t.add_argument("--real-psf-fwhm", type=float, nargs=2, metavar=("LO", "HI"),
                   help="core FWHM range of the real PSFs in pixels (default 1.6 3.0)")
    t.add_argument("--background-fraction", type=float, help="fraction of samples given a gradient or a "
                   "neighbour's halo (default 0)")
    t.add_argument("--neighbour-fraction", type=float, help="fraction of samples given a second galaxy: "
                   "blends and sources cut by the edge (default 0)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its state.pt")
    t.add_argument("--stop-at", type=int, metavar="N", help="stop (saving the state) at iteration N while keeping "
                   "the cosine schedule of --iterations; --resume continues it later")
    e = sub.add_parser("evaluate", help="evaluate a model like the paper (report.md, metrics.json, plots)",
                       description="Evaluate a checkpoint on the test split (index mod 10 == 0) of a shard folder: "
                       "Table 1 PSNR/SSIM with Richardson-Lucy and Wiener baselines (tuned on the validation split, "
                       "background-subtracted and clipped before min-max), Sérsic morphology (Fig. 6), Kron/isophotal/"
                       "pixel photometry (Fig. 7), noise sweep, point-source FWHM, correlated noise, blank stamps.")
    e.add_argument("model", help="checkpoint (.safetensors or .pth)")
    e.add_argument("--data", required=True, help="shard folder")
    e.add_argument("-o", "--out", required=True, help="report folder")
    e.add_argument("--count", type=int, default=500, help="test stamps for Table 1 (default 500)")
    e.add_argument("--morph-count", type=int, default=150, help="galaxies for the Sérsic/photometry comparison "
                   "(default 150)")
    e.add_argument("--stars", type=int, default=1000, help="point sources in the FWHM test (default 1000)")
    e.add_argument("--blank-seeds", type=int, default=10, help="seeds of blank noise stamps (default 10)")
    e.add_argument("--blank-per-seed", type=int, default=100, help="blank stamps per seed (default 100)")
    e.add_argument("--tune-count", type=int, default=64, help="validation stamps to tune the baselines (default 64)")
    e.add_argument("--seed", type=int, default=2024, help="seed of the test degradations (default 2024)")
    e.add_argument("--noise-rms", type=float, default=0.05, help="LQ noise rms after min-max (default 0.05)")
    e.add_argument("--fwhm", type=float, default=1.88, help="LQ PSF FWHM in pixels (default 1.88)")
    e.add_argument("--consistency", action="store_true", help="evaluate the model followed by the data-consistency "
                   "step (galviewer restore --consistency), the noise taken from each input's background")
    e.add_argument("--anchor", type=float, default=0.0, metavar="SIGMA",
                   help="evaluate the model followed by the large-scale anchoring of σ SIGMA px (galviewer restore "
                   "--anchor); 0 (default): none")
    e.add_argument("--repair", action="store_true", help="evaluate the model followed by the local repair "
                   "(galviewer restore --repair)")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda")
    e.add_argument("--overwrite", action="store_true", help="replace an existing report")

    c = sub.add_parser("calibrate", help="fit the factors that turn the flip spread into a 1σ, and measure coverage",
                       description="Restore degraded ground truths of the validation split through the app's "
                       "pipeline at LQ noise 0.01–0.15, fit per bin of restored S/N the factor k with which "
                       "k × (spread of the 8 flips) covers 68 %% of |RS − GT|, and report the coverage on the test "
                       "split (and on real-morphology pairs with --real) per S/N bin and noise level.")
    c.add_argument("model", help="checkpoint (.safetensors or .pth)")
    c.add_argument("--data", required=True, help="simulated shard folder")
    c.add_argument("--real", help="harvested shard folder (galviewer-train harvest) for the real-morphology coverage")
    c.add_argument("-o", "--out", required=True, help="report folder (coverage.md, coverage.json)")
    c.add_argument("--save", help="write the calibrated checkpoint to this .safetensors file")
    c.add_argument("--count", type=int, default=40, help="ground truths from each split (default 40; × 5 noise "
                   "levels)")
    c.add_argument("--real-count", type=int, default=64, help="ground truths from --real (default 64; × 5 noise "
                   "levels)")
    c.add_argument("--seed", type=int, default=2024, help="seed of the degradations (default 2024)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda")
    c.add_argument("--overwrite", action="store_true", help="replace an existing report or --save file")

    h = sub.add_parser("harvest", help="cut galaxy stamps from real images with the paper's selection (§3.1)",
                       description="Detect sources (5 connected pixels above 1.5σ), size stamps w = 2⌊4a+5⌋, "
                       "apply the rejection rules of the paper's §3.1 (w > 128, semi-minor axis or R50 below the "
                       "PSF FWHM, S/N < 20, a neighbour brighter than 0.8 × the peak, a centre sharper than the "
                       "PSF, the stellar locus of the size–magnitude diagram), discard stamps truncated by the "
                       "edge, pad with matching noise or trim to 64×64, keep GT-quality stamps (rms after "
                       "min-max < 0.02, §3.3), fit a Sérsic profile to each, and write shards + catalog.ecsv "
                       "(usable by `simulate sersic --prior-from`) + rejections.json.")
    h.add_argument("files", nargs="+", help="FITS images (HST FLT/DRZ, JWST mosaics, plain)")
    h.add_argument("-o", "--out", required=True, help="output shard folder (appears only when complete)")
    h.add_argument("--ext", default=None, help="image extension (default: SCI,1 or the first image)")
    h.add_argument("--psf-fwhm", type=float, default=1.88, help="PSF FWHM of the images in pixels (default 1.88, "
                   "HST ACS/WFC at 0.05″)")
    h.add_argument("--nsigma", type=float, default=1.5, help="detection threshold in σ (default 1.5)")
    h.add_argument("--npixels", type=int, default=5, help="connected pixels for a detection (default 5)")
    h.add_argument("--min-snr", type=float, default=20.0, help="minimum S/N (default 20)")
    h.add_argument("--max-rms", type=float, default=0.02, help="keep stamps whose background rms after min-max "
                   "normalisation is below this (default 0.02, the paper's GT criterion)")
    h.add_argument("--no-rms-cut", action="store_true", help="keep stamps whatever their noise (e.g. LQ images)")
    h.add_argument("--seed", type=int, default=0, help="seed of the padding noise")
    h.add_argument("--overwrite", action="store_true", help="replace an existing output folder")

    x = sub.add_parser("export", help="write a checkpoint for shipping, with its evaluation in the metadata",
                       description="Copy a checkpoint into galviewer's format with the summary of an evaluate "
                       "report (metrics.json) stored in its metadata; optionally as float16.")
    x.add_argument("model", help="checkpoint (.safetensors or .pth)")
    x.add_argument("--metrics", help="metrics.json written by evaluate")
    x.add_argument("--name", help="model name (default: the checkpoint's)")
    x.add_argument("-o", "--out", required=True, help="output file (.safetensors, or .pth with --format pth)")
    x.add_argument("--format", choices=("safetensors", "pth"), default="safetensors",
                   help="safetensors: galviewer's format, metadata and sha256 included (default); pth: the "
                        "BasicSR {'params': state_dict} layout the authors' Restormer code loads (weights only)")
    x.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the size)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing file")
    return parser


def _cmd_export(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from pathlib import Path

    import torch

    from galviewer.core.nn.weights import load_model, save_checkpoint

    model, meta = load_model(args.model, "cpu")
    metrics = dict(meta.metrics)
    if args.metrics:
        try:
            res = json.loads(Path(args.metrics).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise _UsageError(f"--metrics {args.metrics}: unreadable ({exc})") from exc
        metrics = {k: res[k] for k in ("table1", "morphology", "photometry", "point_sources", "blank", "edges",
                                        "baseline_params", "test_stamps", "data_kind") if k in res}
        metrics["evaluated_on"] = Path(res.get("data", "")).name
    meta = dataclasses.replace(meta, name=args.name or meta.name, metrics=metrics, weights_sha256="")
    dtype = torch.float16 if args.fp16 else None
    if args.format == "pth":
        from galviewer.core.nn.weights import save_basicsr

        out = save_basicsr(args.out, model, overwrite=args.overwrite, dtype=dtype)
        print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, {{'params': state_dict}} of {meta.name} "
              f"({meta.config.to_json()})")
        return 0
    out = save_checkpoint(args.out, model, meta, overwrite=args.overwrite, dtype=dtype)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, model {meta.name}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from trainer.calibrate import calibrate

    res = calibrate(args.model, args.data, args.out, real=args.real, save=args.save, count=args.count,
                    real_count=args.real_count, seed=args.seed, device=args.device, overwrite=args.overwrite,
                    echo=lambda m: print(m, file=sys.stderr))
    parts = [f"{name} {100 * res[part]['calibrated']['by_restored_snr']['all']['coverage']:.0f} % (flip spread "
             f"{100 * res[part]['spread']['by_restored_snr']['all']['coverage']:.0f} %)"
             for part, name in (("test", "test pairs"), ("real", "real-morphology pairs")) if part in res]
    print(f"{args.out}: coverage of the calibrated 1σ: " + ", ".join(parts))
    return 0


def _cmd_harvest(args: argparse.Namespace) -> int:
    from trainer.harvest import HarvestConfig, harvest

    cfg = HarvestConfig(psf_fwhm=args.psf_fwhm, nsigma=args.nsigma, npixels=args.npixels, min_snr=args.min_snr,
                        max_rms=None if args.no_rms_cut else args.max_rms, seed=args.seed)
    res = harvest(args.files, args.out, cfg, ext=args.ext, overwrite=args.overwrite,
                  echo=lambda m: print(m, file=sys.stderr))
    rejected = ", ".join(f"{k} {v}" for k, v in res.rejected.items() if v)
    print(f"{args.out}: {len(res.stamps)} stamps kept of {res.detected} detections (rejected: {rejected or 'none'})")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from trainer.simulate import simulate

    out = simulate(args.kind, args.count, args.out, seed=args.seed, workers=args.workers,
                   shard_size=args.shard_size, prior_from=args.prior_from, overwrite=args.overwrite,
                   progress=_progress(f"simulate {args.kind}"))
    print(out)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from trainer.train import load_config, train

    cfg = load_config(
        args.config, data=args.data, out=args.out, preset=args.preset, init=args.init, name=args.name,
        iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, lr_min=args.lr_min,
        weight_decay=args.weight_decay, val_every=args.val_every, val_count=args.val_count,
        log_every=args.log_every, seed=args.seed, device=args.device, threads=args.threads,
        degrade_noise_range=tuple(args.noise_range) if args.noise_range else None,
        degrade_fwhm_range=tuple(args.fwhm_range) if args.fwhm_range else None,
        degrade_correlated_fraction=args.correlated_fraction,
        degrade_point_fraction=args.point_fraction,
        degrade_log_noise_fraction=args.log_noise_fraction,
        degrade_noise_floor=args.noise_floor,
        degrade_real_psf_fraction=args.real_psf_fraction,
        degrade_real_psf_fwhm=tuple(args.real_psf_fwhm) if args.real_psf_fwhm else None,
        degrade_background_fraction=args.background_fraction,
        degrade_neighbour_fraction=args.neighbour_fraction,
    )
    if not cfg.data:
        raise _UsageError("--data (or 'data' in --config) is required")
    out = train(cfg, resume=args.resume, stop_at=args.stop_at)
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    commands = {"simulate": _cmd_simulate, "train": _cmd_train, "export": _cmd_export, "harvest": _cmd_harvest,
                "calibrate": _cmd_calibrate}
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "evaluate":
        from trainer.evaluate import cli_evaluate

        commands["evaluate"] = cli_evaluate
    try:
        return commands[args.command](args)
    except _UsageError as exc:
        parser.error(str(exc))
    except GalviewerError as exc:
        print(f"galviewer-train {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"galviewer-train {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
