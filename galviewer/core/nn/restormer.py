"""Restormer (Zamir et al. 2022) for one-channel galaxy restoration (Park et al. 2024).

Written from the architecture description in METHOD.md §1.  The module and
parameter names follow the published layout, so the authors' released
checkpoint (``{'params': state_dict}``) loads into :class:`Restormer` built with
the ``galaxy`` preset.

The per-pixel channel LayerNorm is computed directly over the channel axis of
the NCHW tensor instead of transposing to (B, HW, C) and back; it is the same
arithmetic, works with ``torch.channels_last`` tensors without copies, and is
evaluated in float32 so half-precision inputs cannot overflow the variance.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from galviewer.errors import ParameterError

__all__ = ["MAX_BLOCKS", "MAX_DIM", "MAX_PARAMETERS", "PRESETS", "Restormer", "RestormerConfig", "count_flops",
           "count_parameters", "meta_state_shapes"]

# Hard caps on an architecture, so that a checkpoint's metadata can never make galviewer allocate an absurd model.
# The paper's galaxy preset (dim 48, 24 encoder blocks, 26 M parameters) sits far inside them.
MAX_DIM = 512
MAX_BLOCKS = 64  # per level, and for the refinement stage
MAX_PARAMETERS = 250_000_000  # 1 GB of float32 weights


@dataclass(frozen=True)
class RestormerConfig:
    """Hyper-parameters of a :class:`Restormer`.

    Parameters
    ----------
    inp_channels, out_channels : int
        Image channels in and out (1 for galaxy stamps).
    dim : int
        Channels of the first level; levels use dim, 2·dim, 4·dim and 8·dim.
    num_blocks : tuple of 4 int
        Transformer blocks per level (encoder; the decoder mirrors levels 1–3).
    num_refinement_blocks : int
        Blocks in the full-resolution refinement stage.
    heads : tuple of 4 int
        Attention heads per level.
    ffn_expansion_factor : float
        GDFN hidden width is ``int(channels * ffn_expansion_factor)``.
    bias : bool
        Whether convolutions carry a bias.
    layernorm_type : {"BiasFree", "WithBias"}
        Channel LayerNorm variant.
    """

    inp_channels: int = 1
    out_channels: int = 1
    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    layernorm_type: str = "BiasFree"

    def __post_init__(self) -> None:
        # Accept lists (e.g. from JSON) but store tuples so the config stays hashable; refuse other types
        # (a checkpoint's metadata is untrusted input).
        def integer(name: str, v: Any) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ParameterError(name, f"must be an integer, got {v!r}")
            return v

        for name in ("num_blocks", "heads"):
            v = getattr(self, name)
            if not isinstance(v, list | tuple):
                raise ParameterError(name, f"must be a list of 4 integers, got {v!r}")
            object.__setattr__(self, name, tuple(integer(name, x) for x in v))
        for name in ("inp_channels", "out_channels", "dim", "num_refinement_blocks"):
            integer(name, getattr(self, name))
        if not isinstance(self.bias, bool):
            raise ParameterError("bias", f"must be true or false, got {self.bias!r}")
        if isinstance(self.ffn_expansion_factor, bool):
            raise ParameterError("ffn_expansion_factor", "must be a number")
        if len(self.num_blocks) != 4 or any(v < 1 for v in self.num_blocks):
            raise ParameterError("num_blocks", f"needs 4 positive integers, got {self.num_blocks}")
        if len(self.heads) != 4 or any(v < 1 for v in self.heads):
            raise ParameterError("heads", f"needs 4 positive integers, got {self.heads}")
        for name in ("inp_channels", "out_channels", "dim"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(name, f"must be a positive integer, got {getattr(self, name)}")
        if self.dim % 2:
            raise ParameterError("dim", f"must be even (downsampling halves it), got {self.dim}")
        if self.num_refinement_blocks < 0:
            raise ParameterError("num_refinement_blocks", "must be >= 0")
        if self.dim > MAX_DIM:
            raise ParameterError("dim", f"{self.dim} exceeds the cap of {MAX_DIM} channels")
        if max(*self.num_blocks, self.num_refinement_blocks) > MAX_BLOCKS:
            raise ParameterError("num_blocks", f"{self.num_blocks} (refinement {self.num_refinement_blocks}) exceeds "
                                 f"the cap of {MAX_BLOCKS} blocks per stage")
        if max(self.inp_channels, self.out_channels) > 16:
            raise ParameterError("inp_channels", "more than 16 image channels is not a galaxy-image model")
        if not (isinstance(self.ffn_expansion_factor, int | float) and 0 < self.ffn_expansion_factor <= 16):
            raise ParameterError("ffn_expansion_factor", f"must be in (0, 16], got {self.ffn_expansion_factor!r}")
        if self.layernorm_type not in ("BiasFree", "WithBias"):
            raise ParameterError("layernorm_type", f"must be 'BiasFree' or 'WithBias', got {self.layernorm_type!r}")
        widths = (self.dim, 2 * self.dim, 4 * self.dim, 8 * self.dim)
        for level, (c, h) in enumerate(zip(widths, self.heads, strict=True), start=1):
            if c % h:
                raise ParameterError("heads", f"level {level} has {c} channels, not divisible by {h} heads")
        if (2 * self.dim) % self.heads[0]:
            raise ParameterError("heads", "decoder level 1 channels (2·dim) not divisible by heads[0]")

    @classmethod
    def from_preset(cls, name: str) -> RestormerConfig:
        """Return the configuration of a named preset (see :data:`PRESETS`)."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ParameterError("preset", f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary of the fields."""
        d = dataclasses.asdict(self)
        d["num_blocks"] = list(self.num_blocks)
        d["heads"] = list(self.heads)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestormerConfig:
        """Build a config from :meth:`to_dict` output, refusing unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ParameterError("config", f"unknown keys {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        """Canonical JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)


PRESETS: dict[str, RestormerConfig] = {
    # The paper's model (and the layout of the authors' released checkpoint): 26,109,076 parameters.
    "galaxy": RestormerConfig(),
    # CPU preset: ~1.6 M parameters, ~0.8 GFLOP per 64x64 stamp.
    "small": RestormerConfig(dim=16, num_blocks=(1, 2, 2, 4), num_refinement_blocks=2, heads=(1, 2, 4, 8)),
    # For tests and smoke runs only.
    "tiny": RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2)),
}


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor, per pixel."""

    def __init__(self, channels: int, with_bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Two-pass mean and variance: on CPU, torch.var_mean over the channel axis is ~15× slower than two
        # plain means (measured in benchmarks/speed.py's history), and this form stays differentiable.
        x32 = x.float()
        d = x32 - x32.mean(1, keepdim=True)
        r = torch.rsqrt((d * d).mean(1, keepdim=True) + 1e-5)
        w = self.weight.float().view(1, -1, 1, 1)
        if self.bias is None:
            return (x32 * r * w).to(x.dtype)
        return torch.addcmul(self.bias.float().view(1, -1, 1, 1), d * r, w).to(x.dtype)


class LayerNorm(nn.Module):
    """Container giving the published parameter names (``normX.body.weight``)."""

    def __init__(self, channels: int, layernorm_type: str) -> None:
        super().__init__()
        self.body = ChannelLayerNorm(channels, with_bias=layernorm_type == "WithBias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FeedForward(nn.Module):
    """Gated-Dconv feed-forward network (GDFN)."""

    def __init__(self, dim: int, factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class Attention(nn.Module):
    """Multi-Dconv head transposed attention (MDTA): attention across channels."""

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        shape = (b, self.num_heads, c // self.num_heads, h * w)
        q = F.normalize(q.reshape(shape), dim=-1)
        k = F.normalize(k.reshape(shape), dim=-1)
        v = v.reshape(shape)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.project_out(out.reshape(b, c, h, w))


class TransformerBlock(nn.Module):
    """``x + attn(norm1(x))`` then ``x + ffn(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, factor: float, bias: bool, layernorm_type: str) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, layernorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, layernorm_type)
        self.ffn = FeedForward(dim, factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 convolution from image channels to ``dim``."""

    def __init__(self, in_c: int, dim: int, bias: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, dim, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """3x3 conv to n/2 channels, then PixelUnshuffle(2) (→ 2n channels, half size)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """3x3 conv to 2n channels, then PixelShuffle(2) (→ n/2 channels, double size)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Restormer(nn.Module):
    """Restormer encoder–decoder predicting a residual added to its input.

    Parameters
    ----------
    config : RestormerConfig, optional
        Architecture; the ``galaxy`` preset by default.

    Notes
    -----
    Any H×W input is accepted: it is padded (reflect, or replicate when the
    image is too small to reflect) to a multiple of 8 and cropped back.
    """

    def __init__(self, config: RestormerConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else RestormerConfig()
        self.config = cfg
        d, nb, hd, f, b, ln = cfg.dim, cfg.num_blocks, cfg.heads, cfg.ffn_expansion_factor, cfg.bias, cfg.layernorm_type

        def blocks(channels: int, heads: int, count: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(channels, heads, f, b, ln) for _ in range(count)])

        self.patch_embed = OverlapPatchEmbed(cfg.inp_channels, d, b)
        self.encoder_level1 = blocks(d, hd[0], nb[0])
        self.down1_2 = Downsample(d)
        self.encoder_level2 = blocks(2 * d, hd[1], nb[1])
        self.down2_3 = Downsample(2 * d)
        self.encoder_level3 = blocks(4 * d, hd[2], nb[2])
        self.down3_4 = Downsample(4 * d)
        self.latent = blocks(8 * d, hd[3], nb[3])
        self.up4_3 = Upsample(8 * d)
        self.reduce_chan_level3 = nn.Conv2d(8 * d, 4 * d, 1, bias=b)
        self.decoder_level3 = blocks(4 * d, hd[2], nb[2])
        self.up3_2 = Upsample(4 * d)
        self.reduce_chan_level2 = nn.Conv2d(4 * d, 2 * d, 1, bias=b)
        self.decoder_level2 = blocks(2 * d, hd[1], nb[1])
        self.up2_1 = Upsample(2 * d)
        self.decoder_level1 = blocks(2 * d, hd[0], nb[0])
        self.refinement = blocks(2 * d, hd[0], cfg.num_refinement_blocks)
        self.output = nn.Conv2d(2 * d, cfg.out_channels, 3, padding=1, bias=b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore a batch ``(B, C, H, W)``; the output has the input's shape."""
        if x.ndim != 4 or x.shape[1] != self.config.inp_channels:
            raise ParameterError(
                "x", f"expected (B, {self.config.inp_channels}, H, W), got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x_in = F.pad(x, (0, pw, 0, ph), mode=mode)
        else:
            x_in = x
        e1 = self.encoder_level1(self.patch_embed(x_in))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        lat = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1))
        out = self.output(self.refinement(d1))
        if self.config.out_channels == self.config.inp_channels:
            out = out + x_in
        return out[..., :h, :w]


def meta_state_shapes(config: RestormerConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict of ``Restormer(config)``, without allocating any weight.

    The model is built on PyTorch's ``meta`` device, which records shapes only; the config's caps
    (:data:`MAX_DIM`, :data:`MAX_BLOCKS`) bound the time this takes.

    Raises
    ------
    ParameterError
        When the architecture holds more than :data:`MAX_PARAMETERS` parameters.
    """
    with torch.device("meta"):
        model = Restormer(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    total = sum(math.prod(s) for s in shapes.values())
    if total > MAX_PARAMETERS:
        raise ParameterError("config", f"{total:,} parameters exceed the cap of {MAX_PARAMETERS:,}")
    return shapes


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, height: int = 64, width: int = 64) -> int:
    """Floating-point operations of one forward pass (multiply-add = 2), by PyTorch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters())
    x = torch.zeros(1, model.config.inp_channels, height, width, dtype=p.dtype, device=p.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())
