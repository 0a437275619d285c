"""Every bad checkpoint input is one SqjaxError line naming the file, key or value."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from sqjax.checkpoints.api import load_model
from sqjax.errors import SqjaxError


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    path = tmp_path_factory.mktemp("hf") / "tiny"
    LlamaForCausalLM(cfg).save_pretrained(path, max_shard_size="20KB")
    return path


def copy_dir(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def rewrite_shard(model_dir, key, change):
    """Rewrites the shard that holds `key` with change(tensors) applied."""
    index = json.loads((model_dir / "model.safetensors.index.json").read_text())
    shard = model_dir / index["weight_map"][key]
    with safe_open(str(shard), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not iterable)
    change(tensors)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    return index, shard


def test_missing_path(tmp_path):
    with pytest.raises(SqjaxError) as e:
        load_model(tmp_path / "nowhere")
    assert f"model path '{tmp_path / 'nowhere'}' does not exist" in one_line(e)


def test_unsupported_architecture(hf_dir, tmp_path):
    d = copy_dir(hf_dir, tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(
        json.dumps(dict(cfg, architectures=["GPT2LMHeadModel"], model_type="gpt2"))
    )
    with pytest.raises(SqjaxError) as e:
        load_model(d)
    assert "config.json: unsupported architectures=['GPT2LMHeadModel']" in one_line(e)


def test_truncated_safetensors(hf_dir, tmp_path):
    d = copy_dir(hf_dir, tmp_path / "m")
    shard = sorted(d.glob("model-*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(SqjaxError) as e:
        load_model(d)
    assert f"{shard}: truncated or corrupt safetensors file" in one_line(e)


def test_shard_in_index_but_absent(hf_dir, tmp_path):
    d = copy_dir(hf_dir, tmp_path / "m")
    shard = sorted(d.glob("model-*.safetensors"))[2]
    shard.unlink()
    with pytest.raises(SqjaxError) as e:
        load_model(d)
    assert f"shard '{shard.name}' (holding '" in one_line(e) and "is missing from" in str(e.value)


@pytest.mark.parametrize("arg", ["dtype", "param_dtype"])
def test_unknown_dtype(hf_dir, arg):
    with pytest.raises(SqjaxError) as e:
        load_model(hf_dir, **{arg: "bf16"})
    assert f"{arg}='bf16' is not a known dtype; use one of float32, bfloat16, float16" == one_line(
        e
    )


def test_shape_mismatch_names_the_key(hf_dir, tmp_path):
    d = copy_dir(hf_dir, tmp_path / "m")
    key = "model.layers.1.mlp.up_proj.weight"
    rewrite_shard(d, key, lambda t: t.update({key: np.zeros((40, 32), np.float32)}))
    with pytest.raises(SqjaxError) as e:
        load_model(d, dtype="float32")
    assert (
        f"tensor '{key}' has a shape that gives (32, 40) for blocks.mlp.up[1], expected (32, 48)"
        in one_line(e)
    )


def test_unused_key_is_named(hf_dir, tmp_path):
    d = copy_dir(hf_dir, tmp_path / "m")
    key = "model.layers.0.self_attn.q_proj.weight"
    index, _ = rewrite_shard(
        d, key, lambda t: t.update({"model.layers.0.mlp.extra.weight": np.ones(3, np.float32)})
    )
    index["weight_map"]["model.layers.0.mlp.extra.weight"] = index["weight_map"][key]
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(SqjaxError) as e:
        load_model(d, dtype="float32")
    assert "unused tensor 'model.layers.0.mlp.extra.weight' (1 unused in all)" in one_line(e)


def test_missing_key_is_named(hf_dir, tmp_path):
    d = copy_dir(hf_dir, tmp_path / "m")
    key = "model.norm.weight"
    index, _ = rewrite_shard(d, key, lambda t: t.pop(key))
    del index["weight_map"][key]
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(SqjaxError) as e:
        load_model(d, dtype="float32")
    assert f"missing tensor '{key}' (1 missing in all)" in one_line(e)


def test_directory_without_weights(hf_dir, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    with pytest.raises(SqjaxError) as e:
        load_model(d)
    assert "neither model.safetensors nor model.safetensors.index.json found" in one_line(e)


def test_non_gguf_file_is_refused(hf_dir):
    shard = min(hf_dir.glob("model-*.safetensors"))
    with pytest.raises(SqjaxError) as e:
        load_model(shard)
    assert "a model file must be .gguf; for safetensors pass the directory" in one_line(e)
