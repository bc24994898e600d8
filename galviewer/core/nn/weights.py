"""Checkpoint reading and writing.

One format is written: a ``.safetensors`` file whose header metadata holds a
JSON document (key ``galviewer``) with the model config, normalisation,
instrument assumptions, training provenance, evaluation numbers and the sha256
of the tensors.  The published BasicSR-style ``.pth`` checkpoints
(``{'params': state_dict}``) are also read, always with
``torch.load(weights_only=True)`` so that no pickled code is ever executed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from galviewer._atomic import atomic_write
from galviewer.core.nn.metadata import ModelMetadata
from galviewer.core.nn.restormer import MAX_BLOCKS, MAX_PARAMETERS, Restormer, RestormerConfig, meta_state_shapes
from galviewer.errors import ParameterError, WeightsError

__all__ = [
    "file_sha256",
    "infer_config",
    "load_checkpoint",
    "load_model",
    "save_basicsr",
    "save_checkpoint",
    "tensors_sha256",
]

_PREFIXES = ("module.", "_orig_mod.")
# A checkpoint larger than the largest model galviewer will build (float32) plus slack is refused unread.
MAX_CHECKPOINT_BYTES = 4 * MAX_PARAMETERS + (64 << 20)


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (sorted by name)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        k = key
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k = k[len(p) :]
                    changed = True
        out[k] = value
    return out


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Restormer,
    metadata: ModelMetadata,
    *,
    overwrite: bool = False,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a model and its metadata as one ``.safetensors`` file, atomically.

    Parameters
    ----------
    path : path-like
        Destination (``.safetensors``).
    model : Restormer
        The model; its config replaces ``metadata.config``.
    metadata : ModelMetadata
        Provenance; ``weights_sha256`` and ``created`` are filled in.
    overwrite : bool
        Replace an existing file.
    dtype : torch.dtype, optional
        Store tensors in this floating dtype (e.g. ``torch.float16`` to halve the size).

    Returns
    -------
    pathlib.Path
        The written path.
    """
    from galviewer import __version__

    # clone(contiguous_format): channels_last weights with size-1 dims report is_contiguous() but keep odd strides.
    state = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
             for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    meta = dataclasses.replace(
        metadata,
        config=model.config,
        weights_sha256=tensors_sha256(state),
        created=metadata.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        galviewer_version=metadata.galviewer_version or __version__,
    )
    header = {"galviewer": meta.to_json(), "format": "pt"}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=header), overwrite=overwrite,
                 error=WeightsError)
    return Path(path)


def save_basicsr(
    path: str | os.PathLike[str], model: Restormer, *, overwrite: bool = False, dtype: torch.dtype | None = None
) -> Path:
    """Write the weights as the authors' code loads them: ``torch.save({'params': state_dict})``, atomically.

    The file holds plain tensors only (galviewer reads it back with ``weights_only=True``); it carries no
    metadata, so the architecture is inferred from the tensors on load.

    Parameters
    ----------
    path : path-like
        Destination (``.pth``).
    model : Restormer
    overwrite : bool
        Replace an existing file.
    dtype : torch.dtype, optional
        Store floating tensors in this dtype.

    Returns
    -------
    pathlib.Path
    """
    state = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
             for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    return atomic_write(path, lambda tmp: torch.save({"params": state}, tmp), overwrite=overwrite,
                        error=WeightsError)


def infer_config(state: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> RestormerConfig:
    """Infer the Restormer architecture from the names and shapes of a state dict.

    Used for checkpoints that carry no config, such as the authors' ``.pth``.

    Parameters
    ----------
    state : mapping
        Parameter name to tensor, or to its shape (a tuple of ints).
    path : path-like, optional
        The file, for error messages.
    """
    state = {k: torch.Size(getattr(v, "shape", v)) for k, v in state.items()}
    try:
        embed = state["patch_embed.proj.weight"]
        out_w = state["output.weight"]
    except KeyError as exc:
        raise WeightsError(path, f"not a Restormer state dict: missing {exc.args[0]!r}") from None
    if len(embed) != 4 or len(out_w) != 4:
        raise WeightsError(path, "not a Restormer state dict: patch_embed.proj.weight and output.weight must be "
                           "4-D convolution kernels")
    dim, inp = int(embed[0]), int(embed[1])
    if dim < 1 or inp < 1:
        raise WeightsError(path, f"not a Restormer state dict: patch_embed.proj.weight has shape {tuple(embed)}")

    def count(prefix: str) -> int:
        idx = set()
        for k in state:
            if k.startswith(prefix):
                head = k[len(prefix):].split(".")[0]
                if not head.isdigit() or len(head) > 9:
                    raise WeightsError(path, f"not a Restormer state dict: unexpected key {k[:120]!r}")
                idx.add(int(head))
        if idx and (len(idx) > MAX_BLOCKS or idx != set(range(len(idx)))):
            shown = sorted(idx)
            listed = str(shown) if len(shown) <= 4 else f"[{', '.join(map(str, shown[:3]))}, ..., {shown[-1]}]"
            raise WeightsError(path, f"not a Restormer state dict: the blocks of {prefix.rstrip('.')} are numbered "
                               f"{listed} ({len(idx)} blocks; expected 0..n-1 with n <= {MAX_BLOCKS})")
        return len(idx)

    blocks = tuple(count(f"{name}.") for name in ("encoder_level1", "encoder_level2", "encoder_level3", "latent"))
    heads = []
    for name in ("encoder_level1", "encoder_level2", "encoder_level3", "latent"):
        t = state.get(f"{name}.0.attn.temperature")
        if t is None or len(t) != 3:
            raise WeightsError(path, f"not a Restormer state dict: missing or malformed "
                               f"'{name}.0.attn.temperature'")
        heads.append(int(t[0]))
    if "encoder_level1.0.ffn.project_in.weight" not in state:
        raise WeightsError(path, "not a Restormer state dict: missing 'encoder_level1.0.ffn.project_in.weight'")
    hidden2 = int(state["encoder_level1.0.ffn.project_in.weight"][0])
    hidden = hidden2 // 2
    factor = 2.66 if int(dim * 2.66) == hidden else hidden / dim
    bias = "patch_embed.proj.bias" in state
    ln = "WithBias" if "encoder_level1.0.norm1.body.bias" in state else "BiasFree"
    try:
        return RestormerConfig(
            inp_channels=inp,
            out_channels=int(out_w[0]),
            dim=dim,
            num_blocks=blocks,  # type: ignore[arg-type]
            num_refinement_blocks=count("refinement."),
            heads=tuple(heads),  # type: ignore[arg-type]
            ffn_expansion_factor=factor,
            bias=bias,
            layernorm_type=ln,
        )
    except ParameterError as exc:
        raise WeightsError(path, f"state dict does not describe a valid Restormer: {exc}") from exc


def _read_pth(path: Path) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it was not written with; the refusal below is what matters.
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message ends with advice to pass weights_only=False, which is exactly what must not be done
        # with an untrusted file; keep only the line naming what the pickle asked for.
        what = next((line.strip() for line in str(exc).splitlines() if "unsupported" in line.lower()), "")
        raise WeightsError(
            path, "refused: the file needs code to unpickle; galviewer loads only plain tensors and never runs "
            f"code from a checkpoint{f' ({what})' if what else ''}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError, IndexError) as exc:
        raise WeightsError(path, f"corrupt or unreadable PyTorch file: {exc}") from exc
    if isinstance(obj, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(path, "does not hold a state dict of tensors (expected {'params': state_dict})")
    return _strip_prefixes(dict(obj))


def load_checkpoint(
    path: str | os.PathLike[str], expected: RestormerConfig | None = None
) -> tuple[dict[str, torch.Tensor], ModelMetadata]:
    """Read a checkpoint's tensors and metadata and check they fit one another.

    Parameters
    ----------
    path : path-like
        A galviewer ``.safetensors`` file, or a ``.pth``/``.pt`` state dict.
    expected : RestormerConfig, optional
        Refuse a checkpoint of another architecture.

    Returns
    -------
    state : dict
        Tensors by parameter name.
    metadata : ModelMetadata
        Provenance (for ``.pth`` files: inferred config and defaults).

    Raises
    ------
    WeightsError
        Missing or corrupt file, a pickle needing code, a checksum mismatch, a
        wrong config, missing or unexpected keys, or mismatched shapes.
    """
    p = Path(path)
    if not p.exists():
        raise WeightsError(p, "no such file")
    if not p.is_file():
        raise WeightsError(p, "not a regular file (a folder, FIFO or device is never read as a checkpoint)")
    size = p.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise WeightsError(p, f"{size / 2**30:.1f} GiB is larger than any model galviewer builds "
                           f"({MAX_CHECKPOINT_BYTES / 2**30:.1f} GiB at most)")
    if p.suffix == ".safetensors":
        state, meta = _read_safetensors(p)
    else:
        state = _read_pth(p)
        meta = ModelMetadata(name=p.stem, config=infer_config(state, p), training_data="external checkpoint")
        _check_fits({k: tuple(v.shape) for k, v in state.items()}, meta.config, p)
    if expected is not None and meta.config != expected:
        raise WeightsError(p, f"wrong config: checkpoint has {meta.config}, expected {expected}")
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise WeightsError(p, f"tensor {k} holds NaN or inf")
    return state, meta


def _read_safetensors(p: Path) -> tuple[dict[str, torch.Tensor], ModelMetadata]:
    """Check a safetensors file's metadata, names and shapes from its header, then read the tensors.

    Nothing is allocated before the architecture the metadata declares is known to match, name for name
    and shape for shape, the tensors the file holds.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as fh:
            header = fh.metadata() or {}
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(p, f"corrupt or unreadable safetensors file: {exc}") from exc
    shapes = _strip_prefixes(shapes)
    if "galviewer" in header:
        meta = ModelMetadata.from_json(header["galviewer"], p)
    else:
        meta = ModelMetadata(name=p.stem, config=infer_config(shapes, p))
    _check_fits(shapes, meta.config, p)
    if "galviewer" in header and not meta.weights_sha256:
        raise WeightsError(p, "the galviewer metadata carries no weights_sha256: the integrity of the "
                           "tensors cannot be checked (galviewer always writes it; the file was altered)")
    try:
        state = _strip_prefixes(load_file(str(p)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(p, f"corrupt or unreadable safetensors file: {exc}") from exc
    if meta.weights_sha256 and tensors_sha256(state) != meta.weights_sha256:
        raise WeightsError(p, "checksum mismatch: tensors differ from the sha256 stored in the metadata")
    return state, meta


def _check_fits(shapes: dict[str, tuple[int, ...]], config: RestormerConfig, path: Path) -> None:
    """Refuse a config whose state dict differs in names or shapes from the tensors a file holds.

    The reference is built on the meta device (shapes only), so a config that declares more than the file
    holds is refused before any memory is allocated for it.
    """
    try:
        reference = meta_state_shapes(config)
    except ParameterError as exc:
        raise WeightsError(path, f"refused: {exc}") from exc
    missing = sorted(set(reference) - set(shapes))
    extra = sorted(set(shapes) - set(reference))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)})")
        if extra:
            parts.append(f"unexpected keys {[e[:120] for e in extra[:5]]}{' ...' if len(extra) > 5 else ''} "
                         f"({len(extra)})")
        raise WeightsError(path, "; ".join(parts))
    bad = [f"{k}: {shapes[k]} vs {v}" for k, v in reference.items() if shapes[k] != v]
    if bad:
        raise WeightsError(path, f"shape mismatch: {bad[:3]}{' ...' if len(bad) > 3 else ''}")


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", expected: RestormerConfig | None = None
) -> tuple[Restormer, ModelMetadata]:
    """Build the model a checkpoint describes and load its weights (float32, eval mode).

    Returns
    -------
    model : Restormer
    metadata : ModelMetadata
    """
    state, meta = load_checkpoint(path, expected)
    model = Restormer(meta.config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    model.eval()
    return model.to(device), meta


def state_dict_allclose(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """True when two state dicts have the same keys and bit-identical tensors."""
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k].cpu().numpy(), b[k].cpu().numpy()) for k in a
    )
