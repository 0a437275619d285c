"""Chunked attention equals the decoder's `_gqa` (causal, packed segments, sliding window,
padding), values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sqjax.models.attention import _Blocks, chunked_gqa
from sqjax.models.cache import attention_mask
from sqjax.models.decoder import _gqa

B, L, N, K, H = 2, 40, 4, 2, 8


def _inputs(seed: int, S: int = L):
    r = np.random.default_rng(seed)
    q = jnp.asarray(r.normal(size=(B, L, N, H)), jnp.float32)
    k = jnp.asarray(r.normal(size=(B, K, H, S)), jnp.float32)
    v = jnp.asarray(r.normal(size=(B, K, S, H)), jnp.float32)
    return q, k, v


def _positions(kind: str):
    pos = np.tile(np.arange(L), (B, 1))
    seg = np.ones((B, L), np.int32)
    if kind == "packed":
        pos[:, 17:] = np.arange(L - 17)
        seg[:, 17:] = 2
        seg[1, 30:], pos[1, 30:] = 3, np.arange(L - 30)
    if kind == "padding":
        pos[0, 25:], seg[0, 25:] = -1, 0  # right padding
        pos[1, :6], seg[1, :6] = -1, 0  # left padding
        pos[1, 6:] = np.arange(L - 6)
    return jnp.asarray(pos), jnp.asarray(seg)


@pytest.mark.parametrize("kind", ["causal", "packed", "window", "padding"])
@pytest.mark.parametrize("chunks", [(8, 16), (16, 7), (64, 64)])
def test_chunked_equals_gqa(kind, chunks):
    q, k, v = _inputs(0)
    pos, seg = _positions(kind)
    window = 5 if kind == "window" else None
    mask = attention_mask(pos, pos, window, seg, seg)
    if kind == "padding":
        assert not bool(mask[0, -1].any())  # a row with no visible key: _gqa averages all values
    want = _gqa(q, k, v, mask)
    got = chunked_gqa(q, k, v, mask, q_chunk=chunks[0], k_chunk=chunks[1])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_chunked_against_a_cache_longer_than_the_queries():
    q, k, v = _inputs(1, S=56)
    k_pos = jnp.where(jnp.arange(56) < 50, jnp.arange(56), -1)[None].repeat(B, 0)
    q_pos = jnp.arange(10, 10 + L)[None].repeat(B, 0)
    mask = attention_mask(q_pos, k_pos)
    want = _gqa(q, k, v, mask)
    got = chunked_gqa(q, k, v, mask, q_chunk=16, k_chunk=12)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["causal", "packed", "window", "padding"])
@pytest.mark.parametrize("chunks", [(16, 8), (8, 16), (64, 64)])
def test_chunked_gradients_equal_gqa(kind, chunks):
    """The custom backward (probabilities recomputed per block, hidden blocks skipped, rows
    that see no key apart) against jax.grad of `_gqa`, with the trainer's masks."""
    q, k, v = _inputs(2)
    pos, seg = _positions(kind)
    mask = attention_mask(pos, pos, 5 if kind == "window" else None, seg, seg)
    w = jnp.asarray(np.random.default_rng(3).normal(size=(B, L, N, H)), jnp.float32)

    def loss(fn):
        return lambda q, k, v: jnp.sum(fn(q, k, v, mask) * w)

    want = jax.grad(loss(_gqa), argnums=(0, 1, 2))(q, k, v)
    chunked = loss(lambda *a: chunked_gqa(*a, q_chunk=chunks[0], k_chunk=chunks[1]))
    got = jax.jit(jax.grad(chunked, argnums=(0, 1, 2)))(q, k, v)
    for name, g, w_ in zip("qkv", got, want):
        np.testing.assert_allclose(
            np.asarray(g), np.asarray(w_), rtol=1e-4, atol=1e-5, err_msg=name
        )


def test_chunked_backward_stores_no_probabilities_and_skips_hidden_blocks():
    """The VJP's residuals are the inputs, the output and per-query softmax statistics: no
    [.., L, S] float array; and a causal mask's blocks above the diagonal run no dot."""
    q, k, v = _inputs(4)
    pos, seg = _positions("causal")
    mask = attention_mask(pos, pos, None, seg, seg)

    def f(q, k, v):
        return chunked_gqa(q, k, v, mask, q_chunk=8, k_chunk=8)

    _, vjp = jax.vjp(f, q, k, v)
    residuals = [x for x in jax.tree.leaves(vjp) if hasattr(x, "shape")]
    floats = [x for x in residuals if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.size <= q.size for x in floats), [x.shape for x in floats]
    # 5 x 5 blocks of 8: 15 on or below the diagonal are visited
    seen = _Blocks(q, k, v, mask, 8, 8).seen
    assert int(seen.sum()) == 15 and not bool(seen[0, 1]) and bool(seen[4, 0])


def test_chunked_never_holds_whole_sequence_float32_logits():
    Lx = 2048
    q = jax.ShapeDtypeStruct((1, Lx, N, H), jnp.bfloat16)
    k = jax.ShapeDtypeStruct((1, K, H, Lx), jnp.bfloat16)
    v = jax.ShapeDtypeStruct((1, K, Lx, H), jnp.bfloat16)
    mask = jax.ShapeDtypeStruct((1, Lx, Lx), jnp.bool_)

    def grads(fn):
        return jax.jit(
            jax.grad(
                lambda q, k, v, m: jnp.sum(fn(q, k, v, m).astype(jnp.float32)), argnums=(0, 1, 2)
            )
        )

    def temp(fn):
        return grads(fn).lower(q, k, v, mask).compile().memory_analysis().temp_size_in_bytes

    full = N * Lx * Lx * 4  # one whole-sequence float32 logits array
    chunked = temp(lambda *a: chunked_gqa(*a, q_chunk=128, k_chunk=128))
    assert chunked < full / 2, (chunked, full)
    assert temp(_gqa) > full, "the reference should hold whole-sequence logits"
