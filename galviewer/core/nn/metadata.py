"""What a checkpoint says about its model: :class:`ModelMetadata` (config, normalisation, pixel scale, PSF,
noise range, training provenance, metrics, sha256), stored as JSON in the safetensors header."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from galviewer.core.nn.restormer import Restormer, RestormerConfig
from galviewer.errors import ParameterError, WeightsError

__all__ = ["FORMAT_VERSION", "ModelMetadata"]

FORMAT_VERSION = 1


@dataclass
class ModelMetadata:
    """Everything a checkpoint says about how its model must be used.

    Attributes
    ----------
    name : str
        Short model name.
    config : RestormerConfig
        Architecture.
    normalisation : str
        Input/target normalisation; ``"minmax"`` (each stamp to [0, 1], METHOD §3).
    pixel_scale_arcsec : float
        Pixel scale of the LQ images the model was trained for.
    psf_fwhm_pix : float
        FWHM (pixels) of the Gaussian LQ PSF used in training; used for the
        eq. 8–9 rescaling and the residual.
    noise_rms_range : tuple of float
        Range of LQ noise rms (after min-max normalisation) seen in training.
    training_data : str
        Description of the training sets.
    iterations : int
        Optimiser steps.
    metrics : dict
        Evaluation numbers (PSNR, SSIM, ...).
    weights_sha256 : str
        sha256 of the tensors (see :func:`tensors_sha256`); verified on load.
    extra : dict
        Free-form additional provenance.
    """

    name: str = "unnamed"
    config: RestormerConfig = field(default_factory=RestormerConfig)
    normalisation: str = "minmax"
    pixel_scale_arcsec: float = 0.05
    psf_fwhm_pix: float = 1.88
    noise_rms_range: tuple[float, float] = (0.0, 0.1)
    training_data: str = ""
    iterations: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    galviewer_version: str = ""
    weights_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def card(self) -> str:
        """The model card as plain text: what it is, what it was trained on, how it scores, where it fails."""
        from galviewer.core.nn.restormer import count_parameters

        c = self.config
        prev = self.extra.get("previous_iterations")
        prev = prev if isinstance(prev, int) and not isinstance(prev, bool) else 0
        with torch.device("meta"):
            params = count_parameters(Restormer(c))
        real = self.extra.get("real_psfs")
        real = real if isinstance(real, list) and all(isinstance(x, str) for x in real) else []
        real_fwhm = self.extra.get("real_psf_fwhm_pix")
        shapes = ""
        if real:
            span = (f" at core FWHM {real_fwhm[0]:g}–{real_fwhm[1]:g} px" if isinstance(real_fwhm, list)
                    and len(real_fwhm) == 2 and all(isinstance(v, int | float) for v in real_fwhm) else "")
            shapes = f" or one of {len(real)} shipped HST PSF shapes{span}"
        lines = [f"Model {self.name} (galviewer {self.galviewer_version or '?'}, created {self.created or '?'})",
                 f"Architecture: Restormer dim {c.dim}, blocks {list(c.num_blocks)}, refinement "
                 f"{c.num_refinement_blocks}, heads {list(c.heads)} — {params:,} parameters",
                 f"Trained for: {self.pixel_scale_arcsec:g}″/px, LQ = GT ⊗ Gaussian FWHM {self.psf_fwhm_pix:.2f} px"
                 + shapes
                 + (f" (GT PSF FWHM {self.extra['gt_psf_fwhm_pix']} px)" if self.extra.get("gt_psf_fwhm_pix") else "")
                 + f", LQ noise rms {self.noise_rms_range[0]:g}–{self.noise_rms_range[1]:g} after min-max",
                 f"Training: {self.iterations:,} iterations" + (f" (+{prev:,} before)" if prev else "")
                 + f"; data: {self.training_data or 'not recorded'}"]
        try:  # metrics are free-form provenance: a block that does not format is left out, never raised
            lines += self._metric_lines()
        except (TypeError, ValueError, KeyError, AttributeError):
            lines.append("Evaluation: metrics present but not in galviewer-train evaluate's layout")
        limits = ("Limits: trained on isolated galaxies with flat backgrounds, white noise and a Gaussian PSF; "
                  "bright stars, blends, other PSFs and drizzled (correlated) noise are outside its range — "
                  "the quality verdict flags them. See README, Limits and Real HST data.")
        if real:
            limits = ("Limits: trained also on real HST PSF shapes, bright-source noise, gradients, halos and blends, "
                      "but bright stars still come back framed with too much flux, and drizzled (correlated) "
                      "noise is outside its range — the quality verdict flags them. See README, Models and Real "
                      "HST data.")
        lines += [limits,
                  "In galviewer every restoration is anchored to the data's large scales by default (the numbers "
                  "above are the network's alone: --anchor 0) and a stamp is restored with an 8-px context margin "
                  "(--context 0: none); bright stars: --point-source.",
                  f"sha256 of the tensors: {self.weights_sha256 or 'not recorded'}"]
        return "\n".join(lines)

    def _metric_lines(self) -> list[str]:
        lines = []
        t1 = self.metrics.get("table1", {})
        if t1:
            scores = ", ".join(f"{k} {v['psnr']:.2f} dB / {v['ssim']:.3f}" for k, v in t1.items()
                               if isinstance(v, dict) and "psnr" in v and "ssim" in v)
            lines.append(f"Evaluation ({self.metrics.get('test_stamps', '?')} test stamps of "
                         f"{self.metrics.get('evaluated_on', '?')}), PSNR/SSIM: {scores}")
        morph = self.metrics.get("morphology", {})
        if morph:
            lines.append("Scatter reduction vs LQ: " + ", ".join(
                f"{k} {v['reduction']:.2f}×" for k, v in morph.items() if isinstance(v, dict) and "reduction" in v))
        ps = self.metrics.get("point_sources", {})
        if ps:
            lines.append(f"Point sources: restored stack FWHM {ps.get('rs_over_gt', float('nan')):.2f} × the truth")
        return lines

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        d["noise_rms_range"] = list(self.noise_rms_range)
        d["format_version"] = FORMAT_VERSION
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, path: str | os.PathLike[str] | None = None) -> ModelMetadata:
        """Parse :meth:`to_json` output, refusing unknown keys and values of the wrong type."""
        try:
            d = json.loads(text)
            if not isinstance(d, dict):
                raise ValueError("metadata is not a JSON object")
            version = d.pop("format_version", FORMAT_VERSION)
            if isinstance(version, bool) or not isinstance(version, int):
                raise ValueError(f"format_version must be an integer, got {version!r}")
            if version > FORMAT_VERSION:
                raise ValueError(f"format_version {version} is newer than this galviewer ({FORMAT_VERSION})")
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = set(d) - known
            if unknown:
                raise ValueError(f"unknown metadata keys {sorted(unknown)}")
            config = d.get("config", {})
            if not isinstance(config, dict):
                raise ValueError(f"config must be a JSON object, got {type(config).__name__}")
            d["config"] = RestormerConfig.from_dict(config)
            _check_types(d)
            if "noise_rms_range" in d:
                d["noise_rms_range"] = tuple(float(v) for v in d["noise_rms_range"])
            return cls(**d)
        except (ValueError, TypeError, ParameterError) as exc:
            raise WeightsError(path, f"invalid galviewer metadata: {exc}") from exc


_STR_FIELDS = ("name", "normalisation", "training_data", "created", "galviewer_version", "weights_sha256")


def _check_types(d: dict[str, Any]) -> None:
    """Refuse metadata values of the wrong type or out of range (a checkpoint is untrusted input)."""
    def number(key: str, positive: bool) -> None:
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (positive and v <= 0):
            raise ValueError(f"{key} must be a finite{' positive' if positive else ''} number, got {v!r}")

    for key in _STR_FIELDS:
        if key in d and not isinstance(d[key], str):
            raise ValueError(f"{key} must be a string, got {d[key]!r}")
    for key in ("pixel_scale_arcsec", "psf_fwhm_pix"):
        if key in d:
            number(key, positive=True)
    if "iterations" in d and (isinstance(d["iterations"], bool) or not isinstance(d["iterations"], int)
                              or d["iterations"] < 0):
        raise ValueError(f"iterations must be a non-negative integer, got {d['iterations']!r}")
    for key in ("metrics", "extra"):
        if key in d and not isinstance(d[key], dict):
            raise ValueError(f"{key} must be a JSON object, got {d[key]!r}")
    if "noise_rms_range" in d:
        r = d["noise_rms_range"]
        if (not isinstance(r, list | tuple) or len(r) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0
                       for v in r) or r[0] > r[1]):
            raise ValueError(f"noise_rms_range must be two finite numbers low <= high, got {r!r}")
    if d.get("normalisation", "minmax") != "minmax":
        raise ValueError(f"normalisation {d['normalisation']!r} is not supported (only 'minmax')")
    sha = d.get("weights_sha256", "")
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ValueError(f"weights_sha256 is not a sha256 hex digest: {sha[:80]!r}")
