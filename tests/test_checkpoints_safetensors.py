"""HF directories in and out: transformers is the reference for every tensor and logit."""

import json
import tracemalloc

import jax
import ml_dtypes
import numpy as np
import pytest
import torch
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from safetensors import safe_open
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from sqjax.checkpoints import safetensors_io
from sqjax.checkpoints.api import export_hf, load_model
from sqjax.sharding import TRAIN_RULES, make_mesh

IDS_BL = np.array([[5, 17, 33, 2, 90, 61, 7, 12], [3, 3, 101, 55, 8, 0, 19, 64]])


def tiny_hf(family: str, **over):
    torch.manual_seed(0)
    common = {
        "vocab_size": 128,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    common.update(over)
    if family == "llama":
        return LlamaForCausalLM(LlamaConfig(**common)).eval()
    return Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=True, **common)).eval()


def hf_logits(model, ids_BL=IDS_BL) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(ids_BL)).logits.float().numpy()


def saved_tensors(model_dir) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118 (not iterable)
    return out


@pytest.mark.parametrize(
    "family, save_shard, export_shard_bytes",
    [("llama", "5GB", 2 * 1024**3), ("qwen2", "5GB", 2 * 1024**3), ("llama", "40KB", 30_000)],
    ids=["llama", "qwen2", "llama-sharded"],
)
def test_round_trip_matches_transformers(tmp_path, family, save_shard, export_shard_bytes):
    hf = tiny_hf(family)
    hf.save_pretrained(tmp_path / "hf", max_shard_size=save_shard)
    ref_BLV = hf_logits(hf)

    ours = load_model(tmp_path / "hf", dtype="float32")
    assert np.abs(np.asarray(ours(IDS_BL)) - ref_BLV).max() <= 1e-5

    out = export_hf(ours, tmp_path / "out", max_shard_bytes=export_shard_bytes)
    original, exported = saved_tensors(tmp_path / "hf"), saved_tensors(out)
    assert sorted(exported) == sorted(original)
    for key, value in original.items():
        np.testing.assert_array_equal(exported[key], value, err_msg=key)
    if export_shard_bytes < 2 * 1024**3:
        index = json.loads((out / safetensors_io.INDEX_FILE).read_text())
        shards = sorted(out.glob("model-*.safetensors"))
        assert len(shards) > 1 and sorted(set(index["weight_map"].values())) == [
            p.name for p in shards
        ]
        assert index["metadata"]["total_size"] == sum(v.nbytes for v in original.values())
    else:
        assert [p.name for p in out.glob("*.safetensors")] == ["model.safetensors"]

    again = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert type(again) is type(hf)
    assert np.abs(hf_logits(again) - ref_BLV).max() <= 1e-5
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 2


def test_export_replaces_an_earlier_export(tmp_path):
    hf = tiny_hf("llama")
    hf.save_pretrained(tmp_path / "hf")
    ours = load_model(tmp_path / "hf", dtype="float32")
    export_hf(ours, tmp_path / "out", max_shard_bytes=30_000)
    (tmp_path / "out" / "notes.txt").write_text("kept")
    export_hf(ours, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["config.json", "generation_config.json", "model.safetensors", "notes.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dir left
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32)
    assert np.abs(hf_logits(again) - hf_logits(hf)).max() <= 1e-5


def test_bf16_checkpoint_loads_exact_values(tmp_path):
    hf = tiny_hf("llama").to(torch.bfloat16)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_model(tmp_path / "hf", dtype="float32")
    want = hf.state_dict()["model.layers.1.mlp.down_proj.weight"].float().numpy()
    np.testing.assert_array_equal(np.asarray(ours.blocks.mlp.down[...][1]), want.T)
    # The raw reader (used when a safetensors build cannot give numpy bf16) agrees with safe_open.
    path = tmp_path / "hf" / "model.safetensors"
    key = "model.layers.0.self_attn.q_proj.weight"
    raw = safetensors_io.read_raw(path, key)
    assert raw.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(raw.astype(np.float32), hf.state_dict()[key].float().numpy())
    assert load_model(tmp_path / "hf").blocks.attn.q[...].dtype == jax.numpy.bfloat16


def test_loading_streams_one_tensor_at_a_time(tmp_path):
    """Host allocations during a load stay near the largest tensor, far below the model.

    tracemalloc sees numpy buffers (not XLA's device buffers), so a loader that read the whole
    checkpoint into host memory first would peak at >= the checkpoint size and fail.
    """
    hf = tiny_hf(
        "llama", vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=8
    )
    hf.save_pretrained(tmp_path / "hf")
    sizes = [v.nbytes for v in saved_tensors(tmp_path / "hf").values()]
    load_model(tmp_path / "hf", dtype="float32")  # warm caches and compilations
    tracemalloc.start()
    try:
        load_model(tmp_path / "hf", dtype="float32")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(sizes) > 30 * max(sizes)
    assert peak < 6 * max(sizes) + 2**20, (peak, max(sizes), sum(sizes))


def test_loads_straight_into_a_2x2x2_mesh(tmp_path):
    hf = tiny_hf("qwen2")
    hf.save_pretrained(tmp_path / "hf", max_shard_size="40KB")
    single = load_model(tmp_path / "hf", dtype="float32")
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    sharded = load_model(tmp_path / "hf", dtype="float32", mesh=mesh, rules=TRAIN_RULES)

    layer = sharded.blocks
    # TRAIN_RULES: embed -> fsdp, heads / kv_heads / mlp / vocab -> tensor, head_dim whole,
    # the stacked layers axis never split.
    assert layer.attn.q[...].sharding == NamedSharding(mesh, P(None, "fsdp", "tensor", None))
    assert layer.attn.o[...].sharding == NamedSharding(mesh, P(None, "tensor", None, "fsdp"))
    assert layer.attn.q_bias[...].sharding == NamedSharding(mesh, P(None, "tensor", None))
    assert layer.mlp.down[...].sharding == NamedSharding(mesh, P(None, "tensor", "fsdp"))
    assert sharded.embed[...].sharding == NamedSharding(mesh, P("tensor", "fsdp"))
    assert layer.attn_norm.weight[...].sharding == NamedSharding(mesh, P(None, None))
    for path, var in nnx.to_flat_state(nnx.state(sharded)):
        assert var.get_value().sharding.mesh == mesh, path
    np.testing.assert_allclose(np.asarray(sharded(IDS_BL)), np.asarray(single(IDS_BL)), atol=1e-5)
    assert np.abs(np.asarray(single(IDS_BL)) - hf_logits(hf)).max() <= 1e-5
