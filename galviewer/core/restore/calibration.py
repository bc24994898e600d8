"""A calibrated 1σ from the spread of the 8 flip/rotation restorations (issue 23, item 7).

The spread of the flips measures how much the network's answer depends on the orientation of its input; it is
not an error bar: on held-out simulated pairs ``|RS − GT| ≤ √(spread² + σ_GT²)`` holds for 16–46 % of the pixels
above a restored S/N of 8, not 68 %.  Measured on ``galviewer-train calibrate``'s pairs, the error is close to
proportional to the spread, with a factor of 2–5 that depends on how bright the pixel is, so a checkpoint can
carry a *calibration*: a factor ``k`` per bin of the restored pixel's signal-to-noise ratio
``t = (RS − sky) / σ_sky`` (σ_sky: the input's background rms), fitted as the 68th percentile of
``√max(|RS − GT|² − σ_GT², 0) / spread`` in each bin of the calibration pairs and interpolated between bins.
``σ = k(t) · spread`` is then the 1σ of the restored pixel, in the sense that ``|RS − GT| ≤ √(σ² + σ_GT²)``
holds for 68 % of the pixels of held-out pairs (σ_GT: the ground truth's own noise).

A checkpoint without a calibration (the authors' weights, an older release) keeps the plain spread, and every
place that shows it says so.  Fitting lives in ``trainer.calibrate``; this module holds what the app needs to
apply and describe it, and the coverage statistics both share.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from galviewer.errors import ParameterError

__all__ = ["COVERAGE_TARGET", "SIGMA_CALIBRATED", "SNR_EDGES", "SigmaCalibration", "bin_labels", "coverage_by_bin",
           "restored_snr", "sigma_title"]

#: the fraction of pixels a 1σ must cover
COVERAGE_TARGET = 0.68
#: ``meta["sigma_kind"]`` of a restoration whose σ is calibrated ("flip spread" otherwise, None without flips)
SIGMA_CALIBRATED = "calibrated 1σ"
#: the inner edges of the restored-S/N bins ``t`` (the outer ones are ±∞)
SNR_EDGES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def restored_snr(rs: np.ndarray, sky: float, noise_rms: float) -> np.ndarray:
    """Each restored pixel's signal-to-noise ratio ``(RS − sky) / σ_sky``.

    Parameters
    ----------
    rs : numpy.ndarray
        Restoration in the input's units.
    sky, noise_rms : float
        The input's background level and rms (e.g. ``Stamp.background_level``, ``Stamp.background_rms``).

    Returns
    -------
    numpy.ndarray
        ``t``; zero everywhere where the rms is not a positive finite number.
    """
    rs = np.asarray(rs, dtype=np.float64)
    if not (math.isfinite(noise_rms) and noise_rms > 0 and math.isfinite(sky)):
        return np.zeros(rs.shape)
    return (rs - sky) / noise_rms


@dataclass(frozen=True)
class SigmaCalibration:
    """Factors that turn the flip spread into a 1σ, per bin of restored S/N.

    Attributes
    ----------
    edges : tuple of float
        Inner bin edges of ``t`` (ascending); ``len(k) == len(edges) + 1``.
    k : tuple of float
        Positive factor per bin.
    target : float
        The coverage the factors were fitted for (0.68).
    fitted_on : str
        What the factors were fitted on (data set, noise levels, pairs).
    coverage : dict
        Held-out coverage measured when fitting (per bin), for the model card.
    """

    edges: tuple[float, ...]
    k: tuple[float, ...]
    target: float = COVERAGE_TARGET
    fitted_on: str = ""
    coverage: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, dtype=float)
        k = np.asarray(self.k, dtype=float)
        if e.ndim != 1 or k.ndim != 1 or len(k) != len(e) + 1:
            raise ParameterError("sigma_calibration", f"needs one factor more than inner edges, got {len(k)} "
                                 f"factors for {len(e)} edges")
        if not (np.all(np.isfinite(e)) and np.all(e > 0) and np.all(np.diff(e) > 0)):
            raise ParameterError("sigma_calibration", "edges must be positive, finite and ascending")
        if not (np.all(np.isfinite(k)) and np.all(k > 0)):
            raise ParameterError("sigma_calibration", f"factors must be positive and finite, got {list(k)}")
        if not 0 < self.target < 1:
            raise ParameterError("sigma_calibration", f"target coverage must lie in (0, 1), got {self.target}")

    def factors(self, t: np.ndarray) -> np.ndarray:
        """The factor ``k`` of each pixel of restored S/N ``t``.

        Each bin's factor holds at the bin's centre in log₂ t (half an octave beyond the outer edges) and is
        interpolated linearly between centres, held beyond the outer ones.  A step at every edge would draw the
        edges into the σ map as contours that are in no image: release 0.2's first two factors differ by 1.6×
        (1.76 below t = 0.5, 2.89 above).  The held-out coverage is the same either way (docs: *Models*).
        """
        le = np.log2(np.asarray(self.edges, dtype=np.float64))
        centres = np.concatenate([[le[0] - 0.5], (le[:-1] + le[1:]) / 2, [le[-1] + 0.5]])
        x = np.log2(np.maximum(np.asarray(t, dtype=np.float64), 2.0 ** (le[0] - 1)))
        return np.interp(x, centres, np.asarray(self.k, dtype=np.float64))

    def apply(self, spread: np.ndarray, rs: np.ndarray, sky: float, noise_rms: float) -> np.ndarray:
        """The calibrated 1σ of each pixel of ``rs`` (float32, the units of ``spread``).

        Parameters
        ----------
        spread : numpy.ndarray
            Spread of the flip/rotation restorations, in the input's units.
        rs : numpy.ndarray
            The restoration it belongs to, in the same units.
        sky, noise_rms : float
            The input's background level and rms.
        """
        return (self.factors(restored_snr(rs, sky, noise_rms)) * spread).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in a checkpoint's metadata (``extra["sigma_calibration"]``)."""
        return {"edges": [float(x) for x in self.edges], "k": [float(x) for x in self.k],
                "target": float(self.target), "fitted_on": self.fitted_on, "coverage": self.coverage}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SigmaCalibration:
        """Read :meth:`to_dict`'s form; a malformed entry raises :class:`~galviewer.errors.ParameterError`."""
        try:
            return cls(edges=tuple(float(x) for x in d["edges"]), k=tuple(float(x) for x in d["k"]),
                       target=float(d.get("target", COVERAGE_TARGET)), fitted_on=str(d.get("fitted_on", "")),
                       coverage=dict(d.get("coverage", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError("sigma_calibration", f"malformed entry in the checkpoint ({exc})") from exc

    @classmethod
    def from_metadata(cls, extra: Mapping[str, Any]) -> SigmaCalibration | None:
        """The calibration a checkpoint's ``extra`` metadata carries, or None."""
        d = extra.get("sigma_calibration")
        return None if d is None else cls.from_dict(d)


def sigma_title(meta: Mapping[str, Any]) -> str:
    """How a restoration's ``sigma`` map is named wherever it is shown: a calibrated 1σ, the plain spread of
    the flips of an uncalibrated checkpoint (which is not an error bar), or none (flips off)."""
    kind = meta.get("sigma_kind")
    if kind is None:
        return "no uncertainty (flips off)"
    return "1σ uncertainty (calibrated)" if kind == SIGMA_CALIBRATED else "flip spread (not a 1σ)"


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Names of the bins between inner ``edges``: ``"< 0.5"``, ``"0.5–1"``, …, ``"≥ 64"``."""
    b = [-math.inf, *edges, math.inf]
    return [f"< {hi:g}" if not math.isfinite(lo) else (f"≥ {lo:g}" if not math.isfinite(hi) else f"{lo:g}–{hi:g}")
            for lo, hi in itertools.pairwise(b)]


def coverage_by_bin(err: np.ndarray, sigma: np.ndarray, values: np.ndarray, edges: Sequence[float]
                    ) -> dict[str, dict[str, float]]:
    """The fraction of pixels with ``err ≤ sigma`` in each bin of ``values``, and overall.

    Parameters
    ----------
    err, sigma : numpy.ndarray
        ``|RS − GT|`` and the bound it is compared with (e.g. ``√(σ² + σ_GT²)``), same shape.
    values : numpy.ndarray
        What the bins are over (the restored S/N, the ground truth's S/N, ...), same shape.
    edges : sequence of float
        Inner bin edges (the bins are named by :func:`bin_labels`).

    Returns
    -------
    dict
        ``{label: {"coverage": f, "pixels": n}}`` with an ``"all"`` entry; empty bins are left out.
    """
    err, sigma, values = (np.asarray(a, dtype=np.float64).ravel() for a in (err, sigma, values))
    inner = list(edges)
    ok = err <= sigma
    out = {"all": {"coverage": float(ok.mean()) if ok.size else math.nan, "pixels": int(ok.size)}}
    b = np.searchsorted(np.asarray(inner, dtype=float), values, side="right")
    for i, name in enumerate(bin_labels(inner)):
        m = b == i
        if m.any():
            out[name] = {"coverage": float(ok[m].mean()), "pixels": int(m.sum())}
    return out
