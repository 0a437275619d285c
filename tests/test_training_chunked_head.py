"""The training forward pass runs the LM head in chunks of positions: same log-probs and
gradients as the whole-sequence head, and less memory (no [B, L, V] float32 logits)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_training_support import tiny_config

from sqjax.errors import SqjaxError
from sqjax.models.decoder import create_model
from sqjax.training.config import TrainConfig
from sqjax.training.forward import target_logprobs


def rows(B: int, L: int, vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, (B, L))
    positions = np.tile(np.arange(L), (B, 1))
    segments = np.ones((B, L), np.int32)
    segments[1, L - 5 :] = 0  # padding at the end of the second row
    positions[1, L - 5 :] = -1
    targets = np.roll(tokens, -1, axis=1)
    arrays = (tokens, positions, segments, targets)
    keys = ("tokens", "positions", "segment_ids", "targets")
    return {k: jnp.asarray(a, jnp.int32) for k, a in zip(keys, arrays)}


def loss_and_grad(model, batch, chunk):
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(params):
        logp_BL = target_logprobs(nnx.merge(graphdef, params), batch, logits_chunk=chunk)
        return -jnp.sum(logp_BL * (batch["segment_ids"] > 0)), logp_BL

    return jax.jit(jax.value_and_grad(loss, has_aux=True)), params


@pytest.mark.parametrize("chunk", [8, 16, 37])
def test_chunked_head_gives_the_same_logprobs_and_gradients(chunk):
    model = create_model(tiny_config(vocab_size=300), seed=3)
    batch = rows(2, 37, 300)  # 37 positions: the last chunk is partial unless chunk = 37
    whole_fn, params = loss_and_grad(model, batch, 0)
    chunked_fn, _ = loss_and_grad(model, batch, chunk)
    (whole, logp_whole), g_whole = whole_fn(params)
    (chunked, logp_chunked), g_chunked = chunked_fn(params)
    assert logp_chunked.shape == (2, 37)
    np.testing.assert_allclose(logp_chunked, logp_whole, atol=1e-5)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_chunked), jax.tree.leaves(g_whole)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_chunked_head_needs_less_memory_for_the_gradient():
    """Whole-sequence logits for B=2, L=512, V=8192 are 32 MiB in float32 (and their gradient
    as much again); 64-position chunks hold 4 MiB at a time."""
    model = create_model(tiny_config(vocab_size=8192), seed=0)
    batch = rows(2, 512, 8192)
    temp = {}
    for chunk in (0, 64):
        fn, params = loss_and_grad(model, batch, chunk)
        stats = fn.lower(params).compile().memory_analysis()
        temp[chunk] = stats.temp_size_in_bytes
    mib = {k: v / 2**20 for k, v in temp.items()}
    print(f"temporary bytes: whole head {mib[0]:.1f} MiB, 64-position chunks {mib[64]:.1f} MiB")
    assert temp[0] - temp[64] > 32 * 2**20


def test_negative_logits_chunk_is_refused():
    with pytest.raises(SqjaxError, match="logits_chunk=-1"):
        TrainConfig(model="m", data=("d.jsonl",), output_dir="out", logits_chunk=-1)
