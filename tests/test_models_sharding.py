"""The forward on 8 fake CPU devices (tests/conftest.py) equals the 1-device forward."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from helpers_hf import hf_model, max_diff_real, padded_batch, sqjax_twin

from sqjax.sharding import SAMPLE_RULES, TRAIN_RULES, batch_sharding, make_mesh, shard_model

FORWARD = nnx.jit(lambda model, ids_BL, mask_BL: model(ids_BL, mask_BL))
# 8 query heads, 4 kv heads, vocab 512: a tensor axis of 8 splits q heads, ffn and vocab
# but must leave the 4 kv heads whole.
SIZES = {"vocab_size": 512, "num_attention_heads": 8, "num_key_value_heads": 4}


def sharded_params(model) -> set[str]:
    """Dotted paths of the parameters that are split across devices."""
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {
        ".".join(map(str, path))
        for path, var in flat
        if not var.get_value().sharding.is_fully_replicated
    }


@pytest.mark.parametrize(
    "mesh_shape, rules, expect_split",
    [
        (
            (2, 2, 2),
            TRAIN_RULES,
            {"embed", "blocks.attn.q", "blocks.attn.k", "blocks.mlp.down", "lm_head"},
        ),
        (
            (1, 1, 8),
            SAMPLE_RULES,
            {"embed", "blocks.attn.q", "blocks.attn.o", "blocks.mlp.gate", "lm_head"},
        ),
        ((8, 1, 1), SAMPLE_RULES, set()),
    ],
    ids=["train-2x2x2", "sample-tensor8", "sample-data8"],
)
def test_sharded_forward_equals_one_device(mesh_shape, rules, expect_split):
    assert jax.device_count() == 8
    model = sqjax_twin(hf_model("LlamaForCausalLM", **SIZES))
    ids_BL, mask_BL = padded_batch([32, 27, 20, 32, 9, 32, 15, 1], 32, "left", vocab=512, seed=7)
    ref_BLV = np.asarray(FORWARD(model, ids_BL, mask_BL))

    mesh = make_mesh(*mesh_shape)
    shard_model(model, mesh, rules)
    split = sharded_params(model)
    assert expect_split <= split, f"expected split: {sorted(expect_split - split)}"
    if not expect_split:
        assert not split
    if mesh.shape["tensor"] == 8:  # 4 kv heads do not divide over 8 devices: kept whole
        assert "blocks.attn.k" not in split

    rows = batch_sharding(mesh)
    out_BLV = FORWARD(model, jax.device_put(ids_BL, rows), jax.device_put(mask_BL, rows))
    assert len(out_BLV.sharding.device_set) == 8
    diff = max_diff_real(ref_BLV, np.asarray(out_BLV), mask_BL)
    print(
        f"mesh {mesh_shape}: sharded vs 1-device max |dlogit| = {diff:.2e}; {len(split)} params split"
    )
    assert diff <= 1e-5
