import numpy as np
import pytest
import torch

from galviewer.core.nn.restormer import PRESETS, Restormer, RestormerConfig, count_flops, count_parameters
from galviewer.errors import ParameterError
from tests.helpers import tiny_model


def test_galaxy_preset_matches_published_layout():
    model = Restormer(RestormerConfig.from_preset("galaxy"))
    sd = model.state_dict()
    assert count_parameters(model) == 26_109_076
    assert len(sd) == 406
    assert sd["encoder_level1.0.ffn.project_in.weight"].shape == (254, 48, 1, 1)
    assert sd["encoder_level1.0.attn.temperature"].shape == (1, 1, 1)
    assert sd["output.weight"].shape == (1, 96, 3, 3)
    for name in ("patch_embed.proj.weight", "encoder_level1.0.norm1.body.weight", "encoder_level1.0.attn.qkv.weight",
                 "encoder_level1.0.attn.qkv_dwconv.weight", "encoder_level1.0.attn.project_out.weight",
                 "encoder_level1.0.norm2.body.weight", "encoder_level1.0.ffn.dwconv.weight",
                 "encoder_level1.0.ffn.project_out.weight", "down1_2.body.0.weight", "up4_3.body.0.weight",
                 "reduce_chan_level3.weight", "reduce_chan_level2.weight", "latent.7.attn.temperature",
                 "refinement.3.ffn.project_out.weight", "decoder_level1.3.attn.temperature"):
        assert name in sd, name
    assert sd["latent.0.attn.temperature"].shape == (8, 1, 1)
    assert "reduce_chan_level1.weight" not in sd
    # ~19.3 GFLOP per 64x64 forward pass (METHOD §1)
    assert count_flops(model, 64, 64) / 1e9 == pytest.approx(19.3, rel=0.02)


def test_small_preset_is_cpu_sized():
    model = Restormer(RestormerConfig.from_preset("small"))
    assert 1.4e6 < count_parameters(model) < 1.7e6
    assert count_flops(model, 64, 64) / 1e9 < 1.0


@pytest.mark.parametrize("shape", [(64, 64), (13, 21), (3, 5), (1, 9), (40, 72)])
def test_any_shape_is_padded_and_cropped(shape):
    model = tiny_model()
    x = torch.rand(2, 1, *shape)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_padding_does_not_change_interior_much_and_is_deterministic():
    model = tiny_model()
    x = torch.rand(1, 1, 60, 60)
    with torch.inference_mode():
        a, b = model(x), model(x)
    assert torch.equal(a, b)


def test_channels_last_matches_nchw():
    model = tiny_model(preset="small")
    x = torch.rand(3, 1, 64, 64)
    with torch.inference_mode():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, cl, atol=1e-5)


def test_layernorm_matches_definition():
    from galviewer.core.nn.restormer import ChannelLayerNorm

    x = torch.randn(2, 6, 5, 4)
    for with_bias in (False, True):
        ln = ChannelLayerNorm(6, with_bias)
        with torch.no_grad():
            ln.weight.uniform_(0.5, 2)
            if with_bias:
                ln.bias.uniform_(-1, 1)
        ref = x.permute(0, 2, 3, 1)
        var = ref.var(-1, keepdim=True, unbiased=False)
        if with_bias:
            exp = (ref - ref.mean(-1, keepdim=True)) / torch.sqrt(var + 1e-5) * ln.weight + ln.bias
        else:
            exp = ref / torch.sqrt(var + 1e-5) * ln.weight
        assert torch.allclose(ln(x), exp.permute(0, 3, 1, 2), atol=1e-5)


def test_layernorm_half_precision_does_not_overflow():
    from galviewer.core.nn.restormer import ChannelLayerNorm

    ln = ChannelLayerNorm(4, False)
    x = torch.full((1, 4, 2, 2), 3000.0, dtype=torch.float16)  # x**2 overflows fp16
    x[0, 0] = 1000.0
    y = ln(x)
    assert y.dtype == torch.float16
    assert torch.isfinite(y).all()


def test_config_validation_names_the_parameter():
    with pytest.raises(ParameterError, match="heads"):
        RestormerConfig(dim=6, heads=(1, 2, 4, 5))
    with pytest.raises(ParameterError, match="num_blocks"):
        RestormerConfig(num_blocks=(1, 2, 3))
    with pytest.raises(ParameterError, match="layernorm_type"):
        RestormerConfig(layernorm_type="Other")
    with pytest.raises(ParameterError, match="preset"):
        RestormerConfig.from_preset("huge")
    with pytest.raises(ParameterError, match="x"):
        tiny_model()(torch.zeros(1, 2, 8, 8))


def test_config_round_trips_through_json_dict():
    for cfg in PRESETS.values():
        assert RestormerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ParameterError, match="unknown keys"):
        RestormerConfig.from_dict({"dim": 8, "colour": 3})
    assert np.isclose(RestormerConfig().ffn_expansion_factor, 2.66)
