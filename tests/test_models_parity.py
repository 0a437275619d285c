"""Parity with transformers on tiny random models: full logits, scores, and layer by layer.

Batches are 640 tokens wide, rows of 640, 577 and 512 real tokens (pads 0, 63, 128), so the
llama3 RoPE scaling (original_max_position_embeddings=64) and a 128-token sliding window
both really act. Differences are taken over real positions only.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from helpers_hf import (
    hf_forward,
    hf_model,
    max_diff_real,
    padded_batch,
    sqjax_twin,
    state_dict_np,
)

from sqjax.checkpoints.convert import load_from_tensors
from sqjax.models.cache import positions_from_mask
from sqjax.models.config import RopeScaling
from sqjax.models.layers import rope_tables

TOL = 1e-4
LENGTHS, WIDTH = [640, 577, 512], 640
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}

# name -> (HF class, HF config overrides, sqjax config change that must alter the logits)
CAUSAL_CASES = {
    "llama-llama3-rope": (
        "LlamaForCausalLM",
        {"rope_parameters": LLAMA3_ROPE},
        {"rope_scaling": RopeScaling()},
    ),
    "llama-attention-bias": (
        "LlamaForCausalLM",
        {"attention_bias": True},
        {"qkv_bias": False, "o_bias": False},
    ),
    "mistral-sliding-window": (
        "MistralForCausalLM",
        {"sliding_window": 128},
        {"sliding_window": None},
    ),
    "qwen2-tied": ("Qwen2ForCausalLM", {"tie_word_embeddings": True}, None),
    "qwen2-untied": ("Qwen2ForCausalLM", {"tie_word_embeddings": False}, None),
}


@pytest.mark.parametrize("name", list(CAUSAL_CASES))
def test_causal_lm_logits_match_transformers_left_padded(name):
    arch, overrides, ablation = CAUSAL_CASES[name]
    hf = hf_model(arch, **overrides)
    ours = sqjax_twin(hf)
    ids_BL, mask_BL = padded_batch(LENGTHS, WIDTH, "left")

    ref_BLV = hf_forward(hf, ids_BL, mask_BL).logits.numpy()
    # transformers' keywords work as they do on an HF model (issue 15, item 5)
    out_BLV = np.asarray(ours(input_ids=jnp.asarray(ids_BL), attention_mask=jnp.asarray(mask_BL)))
    diff = max_diff_real(ref_BLV, out_BLV, mask_BL)
    print(f"{name}: max |dlogit| = {diff:.2e} (logit std {ref_BLV.std():.2f})")
    assert diff <= TOL

    if "tie_word_embeddings" in overrides:
        assert ours.config.tie_word_embeddings == overrides["tie_word_embeddings"]
        assert hasattr(ours, "lm_head") != overrides["tie_word_embeddings"]
    if ablation is not None:  # the feature under test changes the logits well beyond TOL
        sd = state_dict_np(hf)
        keys = [k for k in sd if "bias" not in k] if "qkv_bias" in ablation else sd.keys()
        plain = load_from_tensors(ours.config.replace(**ablation), keys, sd.__getitem__)
        assert max_diff_real(ref_BLV, np.asarray(plain(ids_BL, mask_BL)), mask_BL) > 1e-2


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "arch", ["LlamaForSequenceClassification", "Qwen2ForSequenceClassification"]
)
def test_score_matches_transformers(arch, side):
    hf = hf_model(arch, num_labels=1)
    ours = sqjax_twin(hf)
    assert ours.config.head == "score" and ours.config.num_labels == 1
    ids_BL, mask_BL = padded_batch(LENGTHS, WIDTH, side, seed=1)

    ref_B = hf_forward(hf, ids_BL, mask_BL).logits.numpy()[:, 0]
    out_B = np.asarray(ours.score(jnp.asarray(ids_BL), jnp.asarray(mask_BL)))
    diff = float(np.abs(ref_B - out_B).max())
    print(f"{arch} {side}-padded: scores {np.round(ref_B, 3)}, max |dscore| = {diff:.2e}")
    assert diff <= TOL


def test_hidden_states_match_transformers_layer_by_layer():
    hf = hf_model("LlamaForCausalLM", num_hidden_layers=3, rope_parameters=LLAMA3_ROPE)
    ours = sqjax_twin(hf)
    ids_BL, mask_BL = padded_batch(LENGTHS, WIDTH, "left", seed=2)
    # transformers 5: (embeddings, block 0 out, ..., block n-2 out, final_norm(block n-1 out))
    ref = [
        h.numpy()
        for h in hf_forward(hf.model, ids_BL, mask_BL, output_hidden_states=True).hidden_states
    ]

    # Decoder.hidden written out block by block, keeping each block's output.
    pos_BL = positions_from_mask(jnp.asarray(mask_BL))
    cos_BLH, sin_BLH = rope_tables(ours.config, jnp.maximum(pos_BL, 0))
    x_BLD = ours._embed(jnp.asarray(ids_BL))
    hidden = [x_BLD]
    for i in range(ours.config.num_layers):
        x_BLD, _ = ours.layer(i)(x_BLD, pos_BL, cos_BLH, sin_BLH, None)
        hidden.append(x_BLD)
    hidden[-1] = ours.final_norm(hidden[-1])

    assert len(ref) == len(hidden) == 4
    for i, (r, h) in enumerate(zip(ref, hidden)):
        diff = max_diff_real(r, np.asarray(h), mask_BL)
        print(f"hidden state {i}: max |dh| = {diff:.2e} (std {r.std():.2f})")
        assert diff <= TOL, f"hidden state {i} differs by {diff}"
    assert max_diff_real(ref[-1], np.asarray(ours.hidden(ids_BL, mask_BL)), mask_BL) <= TOL


@pytest.mark.parametrize(
    "arch, overrides", [("LlamaForCausalLM", {}), ("MistralForCausalLM", {"sliding_window": 8})]
)
def test_chunked_attention_matches_transformers(arch, overrides, monkeypatch):
    """Sequences longer than ATTN_CHUNK attend block by block (online softmax): with blocks
    of 8 queries and keys, a 24-token batch runs the chunked path and still matches HF."""
    from sqjax.models import decoder

    monkeypatch.setattr(decoder, "ATTN_CHUNK", 8)
    monkeypatch.setattr(decoder, "ATTN_BLOCK", 8)
    hf = hf_model(arch, **overrides)
    ours = sqjax_twin(hf)
    ids_BL, mask_BL = padded_batch(LENGTHS, WIDTH, "left", seed=11)
    ref_BLV = hf_forward(hf, ids_BL, mask_BL).logits.numpy()
    out_BLV = np.asarray(ours(jnp.asarray(ids_BL), jnp.asarray(mask_BL)))
    assert WIDTH > decoder.ATTN_CHUNK
    assert max_diff_real(ref_BLV, out_BLV, mask_BL) <= TOL
