"""GGUF reading on tiny files written with gguf.GGUFWriter the way llama.cpp's converter does.

The converter's Q/K permutation is restated here from convert_hf_to_gguf.py (`LlamaModel.permute`)
so the loader's inverse is checked against llama.cpp's formula, and transformers gives the logits.
"""

import gguf
import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sqjax.checkpoints.api import load_model
from sqjax.checkpoints.gguf_io import unpermute_rows
from sqjax.errors import SqjaxError

HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def llama_cpp_permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute, verbatim in numpy."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_name(hf_key: str) -> str:
    if hf_key in HF_TO_GGUF:
        return HF_TO_GGUF[hf_key]
    _, _, layer, rest = hf_key.split(".", 3)
    module = rest.rsplit(".", 1)[0]
    return f"blk.{layer}.{HF_TO_GGUF[module]}.weight"


def write_gguf(path, hf: LlamaForCausalLM, arch: str = "llama", extra: dict | None = None) -> None:
    c = hf.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_token_list([f"t{i}" for i in range(c.vocab_size)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    tensors = {k: v.float().numpy() for k, v in hf.state_dict().items()}
    if c.tie_word_embeddings:
        tensors.pop("lm_head.weight")
    for key, value in {**tensors, **(extra or {})}.items():
        if key.endswith("q_proj.weight"):
            value = llama_cpp_permute(value, c.num_attention_heads, c.num_attention_heads)
        elif key.endswith("k_proj.weight"):
            value = llama_cpp_permute(value, c.num_attention_heads, c.num_key_value_heads)
        w.add_tensor(gguf_name(key) if key in tensors else key, np.ascontiguousarray(value))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tiny_llama(tied: bool) -> LlamaForCausalLM:
    torch.manual_seed(1)
    cfg = LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=50000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_tiny_gguf_matches_transformers(tmp_path, tied):
    hf = tiny_llama(tied)
    write_gguf(tmp_path / "tiny.gguf", hf)
    ours = load_model(tmp_path / "tiny.gguf", dtype="float32")
    cfg = ours.config
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) == (
        2,
        64,
        4,
        2,
        16,
    )
    assert (cfg.vocab_size, cfg.tie_word_embeddings, cfg.rope_theta, cfg.eos_token_ids) == (
        96,
        tied,
        50000.0,
        (2,),
    )
    assert cfg.rms_norm_eps == pytest.approx(1e-5)
    ids_BL = np.array([[4, 9, 33, 70, 2, 15]])
    with torch.no_grad():
        ref_BLV = hf(torch.tensor(ids_BL)).logits.numpy()
    assert np.abs(np.asarray(ours(ids_BL)) - ref_BLV).max() <= 1e-5


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    for n_head in (1, 2, 3, 6):
        np.testing.assert_array_equal(
            unpermute_rows(llama_cpp_permute(w, n_head, n_head), n_head), w
        )
    assert not np.array_equal(llama_cpp_permute(w, 3, 3), w)


def test_non_llama_architecture_is_refused(tmp_path):
    write_gguf(tmp_path / "q.gguf", tiny_llama(True), arch="qwen2")
    with pytest.raises(SqjaxError, match=r"q\.gguf: GGUF architecture 'qwen2' is not supported"):
        load_model(tmp_path / "q.gguf", dtype="float32")


def test_unknown_gguf_tensor_is_named(tmp_path):
    write_gguf(
        tmp_path / "x.gguf",
        tiny_llama(True),
        extra={"blk.0.attn_qkv.weight": np.zeros((4, 64), np.float32)},
    )
    with pytest.raises(
        SqjaxError, match=r"GGUF tensor 'blk\.0\.attn_qkv\.weight' has no HF llama counterpart"
    ):
        load_model(tmp_path / "x.gguf", dtype="float32")


def test_not_a_gguf_file(tmp_path):
    (tmp_path / "bad.gguf").write_bytes(b"this is not gguf" * 10)
    with pytest.raises(SqjaxError, match=r"bad\.gguf: not a readable GGUF file"):
        load_model(tmp_path / "bad.gguf", dtype="float32")
