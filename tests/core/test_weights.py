import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from galviewer.core.nn.restormer import Restormer, RestormerConfig
from galviewer.core.nn.weights import (
    ModelMetadata,
    infer_config,
    load_checkpoint,
    load_model,
    save_checkpoint,
    state_dict_allclose,
)
from galviewer.errors import OutputExistsError, WeightsError
from tests.helpers import tiny_model


def test_round_trip_is_bit_exact(tmp_path):
    model = tiny_model(3)
    meta = ModelMetadata(name="t", psf_fwhm_pix=1.9, noise_rms_range=(0.01, 0.1), iterations=5,
                         metrics={"psnr": 40.5}, training_data="unit test")
    path = save_checkpoint(tmp_path / "m.safetensors", model, meta)
    loaded, meta2 = load_model(path)
    assert state_dict_allclose(model.state_dict(), loaded.state_dict())
    assert meta2.config == model.config
    assert meta2.psf_fwhm_pix == 1.9 and meta2.noise_rms_range == (0.01, 0.1)
    assert meta2.metrics == {"psnr": 40.5} and meta2.iterations == 5
    assert len(meta2.weights_sha256) == 64
    x = torch.rand(1, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_never_overwrites_without_asking(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model(), ModelMetadata())
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_checkpoint(path, tiny_model(1), ModelMetadata())
    assert path.read_bytes() == before
    save_checkpoint(path, tiny_model(1), ModelMetadata(), overwrite=True)
    assert path.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp files left


def test_fp16_storage_loads_as_float32(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "h.safetensors", model, ModelMetadata(), dtype=torch.float16)
    loaded, _ = load_model(path)
    p = next(loaded.parameters())
    assert p.dtype == torch.float32
    ref = dict(model.named_parameters())
    for name, q in loaded.named_parameters():
        assert torch.allclose(q, ref[name], rtol=1e-3, atol=1e-3)


def test_reads_published_basicsr_pth_with_prefixes(tmp_path):
    model = tiny_model(5)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "net_g_latest.pth"
    torch.save({"params": state}, path)
    loaded, meta = load_model(path)
    assert meta.config == model.config
    assert state_dict_allclose(model.state_dict(), loaded.state_dict())


def test_infers_galaxy_config_from_state_dict():
    sd = Restormer(RestormerConfig()).state_dict()
    assert infer_config(sd) == RestormerConfig()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_refuses_pickle_that_needs_code(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"params": _Evil()}, fh)
    with pytest.raises(WeightsError, match="needs code") as info:
        load_checkpoint(path)
    assert info.value.path == str(path)
    assert "pwned" not in capsys.readouterr().out


def test_corrupt_and_missing_files(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        load_checkpoint(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(WeightsError, match="corrupt"):
        load_checkpoint(bad)
    good = save_checkpoint(tmp_path / "g.safetensors", tiny_model(), ModelMetadata())
    trunc = tmp_path / "t.safetensors"
    trunc.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(WeightsError):
        load_checkpoint(trunc)
    badpth = tmp_path / "bad.pth"
    badpth.write_bytes(b"not a zip")
    with pytest.raises(WeightsError):
        load_checkpoint(badpth)


def test_checksum_detects_changed_tensors(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model(), ModelMetadata())
    state, meta = load_checkpoint(path)
    state["output.weight"] = state["output.weight"] + 1e-3
    tampered = tmp_path / "x.safetensors"
    save_file(state, str(tampered), metadata={"galviewer": meta.to_json()})
    with pytest.raises(WeightsError, match="checksum"):
        load_checkpoint(tampered)


def test_missing_extra_and_mismatched_keys(tmp_path):
    sd = tiny_model().state_dict()
    missing = {k: v for k, v in sd.items() if k != "output.weight"}
    torch.save({"params": missing}, tmp_path / "a.pth")
    with pytest.raises(WeightsError, match=r"output\.weight"):
        load_checkpoint(tmp_path / "a.pth")
    extra = dict(sd, **{"encoder_level1.0.attn.extra": torch.zeros(1)})
    torch.save({"params": extra}, tmp_path / "b.pth")
    with pytest.raises(WeightsError, match="unexpected keys"):
        load_checkpoint(tmp_path / "b.pth")
    shape = dict(sd)
    shape["encoder_level1.0.attn.qkv_dwconv.weight"] = torch.zeros(3, 1, 3, 3)
    torch.save({"params": shape}, tmp_path / "c.pth")
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_checkpoint(tmp_path / "c.pth")
    nan = dict(sd)
    nan["output.weight"] = torch.full_like(sd["output.weight"], float("nan"))
    torch.save({"params": nan}, tmp_path / "d.pth")
    with pytest.raises(WeightsError, match="NaN"):
        load_checkpoint(tmp_path / "d.pth")
    torch.save([1, 2, 3], tmp_path / "e.pth")
    with pytest.raises(WeightsError, match="state dict"):
        load_checkpoint(tmp_path / "e.pth")


def test_wrong_config_and_bad_metadata(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model(), ModelMetadata())
    with pytest.raises(WeightsError, match="wrong config"):
        load_checkpoint(path, expected=RestormerConfig.from_preset("small"))
    state, meta = load_checkpoint(path)
    doc = json.loads(meta.to_json())
    doc["surprise"] = 1
    odd = tmp_path / "odd.safetensors"
    save_file(state, str(odd), metadata={"galviewer": json.dumps(doc)})
    with pytest.raises(WeightsError, match="unknown metadata keys"):
        load_checkpoint(odd)
    # A config that disagrees with the tensors is caught as a key/shape mismatch.
    doc = json.loads(meta.to_json())
    doc["config"]["dim"] = 16
    doc["weights_sha256"] = ""
    lie = tmp_path / "lie.safetensors"
    save_file(state, str(lie), metadata={"galviewer": json.dumps(doc)})
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_checkpoint(lie)


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    from galviewer._atomic import atomic_write

    out = atomic_write(tmp_path / "x.txt", lambda p: p.write_text("hi"))
    mask = os.umask(0)
    os.umask(mask)
    assert (out.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_the_model_card_says_what_the_model_is_and_survives_odd_metrics(tmp_path, capsys):
    from galviewer.cli import main

    meta = ModelMetadata(name="m", iterations=1234, training_data="unit test",
                         metrics={"table1": {"RS": {"psnr": 35.1, "ssim": 0.82}}, "test_stamps": 9,
                                  "morphology": {"n": {"reduction": 1.5}}})
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model(), meta)
    assert main(["models", "--card", str(path)]) == 0
    card = capsys.readouterr().out
    assert "Model m" in card and "1,234 iterations" in card and "RS 35.10 dB / 0.820" in card
    assert "n 1.50×" in card and "sha256" in card
    odd = ModelMetadata(metrics={"table1": {"RS": {"psnr": "high", "ssim": None}}, "morphology": [1]})
    assert "not in galviewer-train evaluate's layout" in odd.card()
