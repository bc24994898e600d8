"""On-disk stamp sets: memory-mappable ``.npy`` shards plus a JSON manifest.

Layout of a shard folder::

    manifest.json          format, kind, seed, counts, per-shard sha256
    gt_00000.npy           float32 (N, 64, 64) ground-truth stamps
    params_00000.npy       float64 (N, 5) q, n, flux, r50, noise (NaN where undefined)

A folder is written under a temporary name and renamed into place when complete,
so an interrupted run never leaves a folder that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from galviewer.errors import ParameterError

__all__ = ["FORMAT", "PARAM_NAMES", "ShardSet", "ShardWriter", "split_indices"]

FORMAT = "galviewer-shards-1"
PARAM_NAMES = ("q", "n", "flux", "r50", "noise")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ShardWriter:
    """Accumulate stamps and write them as shards; :meth:`close` publishes the folder atomically."""

    def __init__(self, out: str | os.PathLike[str], info: dict[str, Any], shard_size: int = 4096,
                 overwrite: bool = False) -> None:
        self.out = Path(out)
        if shard_size < 1:
            raise ParameterError("shard_size", f"must be >= 1, got {shard_size}")
        if self.out.exists() and not overwrite and (not self.out.is_dir() or any(self.out.iterdir())):
            raise ParameterError("out", f"{self.out} exists and is not empty; choose another folder or --overwrite")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".partial", dir=self.out.parent))
        self.info = dict(info)
        self.shard_size = int(shard_size)
        self._imgs: list[np.ndarray] = []
        self._params: list[np.ndarray] = []
        self._pending = 0
        self.shards: list[dict[str, Any]] = []
        self.count = 0

    def add(self, imgs: np.ndarray, params: np.ndarray) -> None:
        """Append a batch of stamps ``(N, H, W)`` and their parameters ``(N, 5)``."""
        imgs = np.asarray(imgs, dtype=np.float32)
        params = np.asarray(params, dtype=np.float64).reshape(len(imgs), len(PARAM_NAMES))
        if imgs.ndim != 3 or not np.isfinite(imgs).all():
            raise ParameterError("stamps", f"must be finite (N, H, W), got shape {imgs.shape}")
        self._imgs.append(imgs)
        self._params.append(params)
        self._pending += len(imgs)
        while self._pending >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, n: int) -> None:
        imgs = np.concatenate(self._imgs)
        params = np.concatenate(self._params)
        k = len(self.shards)
        gfile, pfile = f"gt_{k:05d}.npy", f"params_{k:05d}.npy"
        np.save(self.tmp / gfile, imgs[:n])
        np.save(self.tmp / pfile, params[:n])
        self.shards.append({"gt": gfile, "params": pfile, "count": int(n), "sha256": _sha256(self.tmp / gfile)})
        self._imgs, self._params = [imgs[n:]], [params[n:]]
        self._pending -= n
        self.count += n

    def close(self) -> Path:
        """Write the remaining stamps and the manifest, then move the folder into place."""
        if self._pending:
            self._flush(self._pending)
        if self.count == 0:
            self.abort()
            raise ParameterError("stamps", "no stamps were written")
        manifest = {"format": FORMAT, "count": self.count, "param_names": list(PARAM_NAMES),
                    "shards": self.shards, **self.info}
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if self.out.exists():
            shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        """Delete the temporary folder."""
        shutil.rmtree(self.tmp, ignore_errors=True)


class ShardSet:
    """A read-only, memory-mapped view of a shard folder.

    Parameters
    ----------
    path : path-like
        Folder written by :class:`ShardWriter`.
    verify : bool
        Check every shard's sha256 against the manifest (reads all the data once).
    """

    def __init__(self, path: str | os.PathLike[str], verify: bool = False) -> None:
        self.path = Path(path)
        mfile = self.path / "manifest.json"
        if not mfile.is_file():
            raise ParameterError("data", f"{self.path}: not a shard folder (no manifest.json)")
        try:
            self.manifest = json.loads(mfile.read_text())
        except json.JSONDecodeError as exc:
            raise ParameterError("data", f"{mfile}: unreadable manifest ({exc})") from exc
        if self.manifest.get("format") != FORMAT:
            raise ParameterError("data", f"{mfile}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        self._gt: list[np.ndarray] = []
        self._params: list[np.ndarray] = []
        for sh in self.manifest["shards"]:
            gfile = self.path / sh["gt"]
            if not gfile.is_file():
                raise ParameterError("data", f"{gfile}: shard listed in the manifest is missing")
            if verify and _sha256(gfile) != sh["sha256"]:
                raise ParameterError("data", f"{gfile}: sha256 does not match the manifest (corrupt shard)")
            try:
                g = np.load(gfile, mmap_mode="r")
                p = np.load(self.path / sh["params"], mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise ParameterError("data", f"{gfile}: unreadable shard ({exc})") from exc
            if len(g) != sh["count"] or len(p) != sh["count"]:
                raise ParameterError("data", f"{gfile}: holds {len(g)} stamps, manifest says {sh['count']}")
            self._gt.append(g)
            self._params.append(p)
        self._starts = np.cumsum([0] + [len(g) for g in self._gt])
        self.kind = self.manifest.get("kind", "unknown")

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"stamp index out of range 0..{len(self) - 1}")
        shard = np.searchsorted(self._starts, idx, side="right") - 1
        return shard, idx - self._starts[shard]

    def gt(self, indices: np.ndarray) -> np.ndarray:
        """GT stamps for the given global indices, float32 ``(N, H, W)``."""
        shard, local = self._locate(indices)
        return np.stack([self._gt[s][i] for s, i in zip(shard, local, strict=True)]).astype(np.float32)

    def params(self, indices: np.ndarray) -> np.ndarray:
        """Parameters ``(N, 5)`` (q, n, flux, r50, noise)."""
        shard, local = self._locate(indices)
        return np.stack([self._params[s][i] for s, i in zip(shard, local, strict=True)])


def split_indices(n: int, split: str) -> np.ndarray:
    """Deterministic 8:1:1 split (METHOD §3.3): index mod 10 == 0 → test, == 1 → val, otherwise train."""
    idx = np.arange(n)
    if split == "test":
        return idx[idx % 10 == 0]
    if split == "val":
        return idx[idx % 10 == 1]
    if split == "train":
        return idx[idx % 10 >= 2]
    if split == "all":
        return idx
    raise ParameterError("split", f"must be train, val, test or all, got {split!r}")
