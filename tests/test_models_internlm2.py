"""InternLM2 loading, checked against a tiny Llama fused into the InternLM2 layout.

InternLM2 is Llama with renamed tensors and q, k, v fused into one `wqkv` whose rows go, per
kv head, through the G query heads of its group, then its k head, then its v head. The
fusing below is written from that description, independently of sqjax's weight tables, so
a tiny Llama fused this way must give the Llama's logits (and reward = sequence score).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from helpers_hf import TINY, hf_forward, hf_model, max_diff_real, padded_batch, state_dict_np

from sqjax.checkpoints.convert import export_tensors, load_from_tensors
from sqjax.models.hf_config import from_hf_config

TOL = 1e-4
# HF Llama name -> InternLM2 name, within a layer and outside.
RENAMES = {
    "self_attn.o_proj": "attention.wo",
    "mlp.gate_proj": "feed_forward.w1",
    "mlp.up_proj": "feed_forward.w3",
    "mlp.down_proj": "feed_forward.w2",
    "input_layernorm": "attention_norm",
    "post_attention_layernorm": "ffn_norm",
}
TOP_RENAMES = {
    "model.embed_tokens.weight": "model.tok_embeddings.weight",
    "model.norm.weight": "model.norm.weight",
    "lm_head.weight": "output.weight",
    "score.weight": "v_head.weight",
}


def internlm2_config(arch: str, bias: bool) -> dict:
    """A config.json with the keys of internlm/internlm2-7b(-reward), tiny sizes."""
    hf = {
        "architectures": [arch],
        "auto_map": {"AutoConfig": "configuration_internlm2.InternLM2Config"},
        "model_type": "internlm2",
        "bias": bias,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": TINY["pad_token_id"],
        "hidden_act": "silu",
        "hidden_size": TINY["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": TINY["intermediate_size"],
        "max_position_embeddings": TINY["max_position_embeddings"],
        "num_attention_heads": TINY["num_attention_heads"],
        "num_hidden_layers": TINY["num_hidden_layers"],
        "num_key_value_heads": TINY["num_key_value_heads"],
        "pretraining_tp": 1,
        "rms_norm_eps": TINY["rms_norm_eps"],
        # As in the real configs; dynamic NTK equals plain RoPE within max_position_embeddings.
        "rope_scaling": {"type": "dynamic", "factor": 2.0},
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": TINY["vocab_size"],
        "attn_implementation": "eager",
    }
    if arch == "InternLM2ForRewardModel":
        hf["reward_token_id"] = 92527 % TINY["vocab_size"]
    return hf


def fuse_to_internlm2(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A Llama state dict in InternLM2 layout (wqkv fused per kv head, InternLM2 names)."""
    N, K = TINY["num_attention_heads"], TINY["num_key_value_heads"]
    G = N // K
    out = {TOP_RENAMES[k]: v for k, v in sd.items() if k in TOP_RENAMES}
    for i in range(TINY["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for old, new in RENAMES.items():
            for suffix in (".weight", ".bias"):
                if p + old + suffix in sd:
                    out[p + new + suffix] = sd[p + old + suffix]
        for suffix in (".weight", ".bias"):
            if p + "self_attn.q_proj" + suffix not in sd:
                continue
            q_heads = np.split(
                sd[p + "self_attn.q_proj" + suffix], N
            )  # query head n uses kv head n // G
            k_heads = np.split(sd[p + "self_attn.k_proj" + suffix], K)
            v_heads = np.split(sd[p + "self_attn.v_proj" + suffix], K)
            rows = []
            for kv in range(K):
                rows += q_heads[kv * G : (kv + 1) * G] + [k_heads[kv], v_heads[kv]]
            out[p + "attention.wqkv" + suffix] = np.concatenate(rows)
    return out


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_internlm2_fused_llama_gives_llama_logits_and_round_trips(bias):
    llama = hf_model("LlamaForCausalLM", attention_bias=bias)
    fused = fuse_to_internlm2(state_dict_np(llama))
    assert ("model.layers.0.attention.wqkv.bias" in fused) == bias
    cfg = from_hf_config(internlm2_config("InternLM2ForCausalLM", bias), source="internlm2 config")
    assert (cfg.family, cfg.head, cfg.qkv_bias, cfg.o_bias) == ("internlm2", "lm", bias, bias)
    ours = load_from_tensors(cfg, fused.keys(), fused.__getitem__)

    ids_BL, mask_BL = padded_batch([640, 577, 512], 640, "left", seed=3)
    ref_BLV = hf_forward(llama, ids_BL, mask_BL).logits.numpy()
    diff = max_diff_real(
        ref_BLV, np.asarray(ours(jnp.asarray(ids_BL), jnp.asarray(mask_BL))), mask_BL
    )
    print(f"internlm2 (bias={bias}) vs llama: max |dlogit| = {diff:.2e}")
    assert diff <= TOL

    exported = dict(export_tensors(ours))
    assert exported.keys() == fused.keys()
    for key, tensor in fused.items():
        np.testing.assert_array_equal(exported[key], tensor, err_msg=key)


def test_internlm2_reward_model_matches_llama_sequence_classification():
    llama = hf_model("LlamaForSequenceClassification", num_labels=1)
    fused = fuse_to_internlm2(state_dict_np(llama))
    assert "v_head.weight" in fused and "output.weight" not in fused
    cfg = from_hf_config(internlm2_config("InternLM2ForRewardModel", False), source="reward config")
    assert (cfg.head, cfg.num_labels, cfg.reward_token_id) == (
        "score",
        1,
        92527 % TINY["vocab_size"],
    )
    ours = load_from_tensors(cfg, fused.keys(), fused.__getitem__)

    ids_BL, mask_BL = padded_batch([640, 577, 512], 640, "right", seed=4)
    ref_B = hf_forward(llama, ids_BL, mask_BL).logits.numpy()[:, 0]
    out_B = np.asarray(ours.score(jnp.asarray(ids_BL), jnp.asarray(mask_BL)))
    diff = float(np.abs(ref_B - out_B).max())
    print(f"internlm2 reward vs llama score: rewards {np.round(ref_B, 3)}, max |d| = {diff:.2e}")
    assert diff <= TOL
