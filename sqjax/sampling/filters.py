"""Sampling strategies on float32 logits, per row, without sorting the vocabulary.

Order and semantics follow HF `generate` (temperature, then top-k, then top-p, then min-p);
vLLM applies the same rules:
  - temperature T: probabilities p = softmax(logits / T); T = 0 means greedy (argmax of the
    raw logits, lowest token id on ties, as torch.argmax).
  - top-k: keep token i iff fewer than k tokens are strictly more probable (k <= 0: off).
  - top-p: keep token i iff the top-k-kept tokens strictly more probable than i hold less than
    top_p of the top-k-kept mass (the smallest head of the sorted distribution reaching top_p).
  - min-p: keep token i iff p_i >= min_p * max(p) (invariant under renormalisation).
Ties: all filters act on the float32 probabilities, and tokens with equal float32 probability
are kept or dropped together (HF's sort keeps an arbitrary subset of a tie at the boundary).

Each filter keeps exactly the tokens with p >= a per-row threshold. Thresholds are found
exactly by bisection over the bit patterns of non-negative float32 values (monotone as
integers): ~30 rounds of a masked count or sum over V, vectorised over rows. Masked float
sums are monotone in the mask (rounding is monotone and the reduction tree is fixed), so the
search is exact. A full sort of V (the usual method) costs far more on CPU.

The kept tokens are then drawn by inverse-CDF sampling with ONE uniform per row (two-level
cumulative sums over blocks of the vocabulary), which is exact for the filtered distribution
and never returns a token of probability 0.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

BLOCK = 128  # vocabulary block for the two-level inverse CDF


class RowSampling(NamedTuple):
    """Per-row sampling parameters as runtime arrays (a new value never recompiles)."""

    temperature_B: jax.Array  # float32; 0 = greedy
    top_k_B: jax.Array  # int32; <= 0 = off
    top_p_B: jax.Array  # float32 in (0, 1]
    min_p_B: jax.Array  # float32 in [0, 1]


def _bits(x):
    return jax.lax.bitcast_convert_type(x, jnp.int32)


def _float(b):
    return jax.lax.bitcast_convert_type(b, jnp.float32)


def smallest_threshold(probs_BV: jax.Array, accept) -> jax.Array:
    """Smallest float32 t per row with accept(t_B1) true, for a predicate monotone in t.

    Searches between the smallest positive p and max(p) of each row; accept(max p) must
    hold. Rows whose predicate holds at the smallest positive p get that value.
    """
    min_pos_B = jnp.min(jnp.where(probs_BV > 0, probs_BV, 1.0), axis=-1)
    lo_B = _bits(min_pos_B) - 1  # accept(lo) treated as false
    hi_B = _bits(jnp.max(probs_BV, axis=-1))
    lo_B = jnp.maximum(lo_B, -1)

    def cond(state):
        lo, hi = state
        return jnp.any(hi - lo > 1)

    def body(state):
        lo, hi = state
        mid = lo + (hi - lo) // 2
        ok = accept(_float(jnp.maximum(mid, 0))[:, None])
        live = hi - lo > 1
        return jnp.where(live & ~ok, mid, lo), jnp.where(live & ok, mid, hi)

    _, hi_B = jax.lax.while_loop(cond, body, (lo_B, hi_B))
    return _float(hi_B)


def top_k_threshold(probs_BV: jax.Array, top_k_B: jax.Array) -> jax.Array:
    """Per-row threshold keeping tokens with fewer than k strictly more probable ones."""
    k_B1 = jnp.where(top_k_B > 0, top_k_B, probs_BV.shape[-1])[:, None]

    def accept(t_B1):
        return (jnp.sum(probs_BV > t_B1, axis=-1, keepdims=True, dtype=jnp.int32) < k_B1)[:, 0]

    return smallest_threshold(probs_BV, accept)


def top_p_threshold(probs_BV: jax.Array, floor_B: jax.Array, top_p_B: jax.Array) -> jax.Array:
    """Per-row top-p threshold on the distribution already cut at floor_B (top-k)."""
    kept_BV = jnp.where(probs_BV >= floor_B[:, None], probs_BV, 0.0)
    target_B1 = (top_p_B * jnp.sum(kept_BV, axis=-1))[:, None]

    def accept(t_B1):
        return (
            jnp.sum(jnp.where(kept_BV > t_B1, kept_BV, 0.0), axis=-1, keepdims=True) < target_B1
        )[:, 0]

    return smallest_threshold(kept_BV, accept)


def filtered_probs(logits_BV: jax.Array, rows: RowSampling) -> jax.Array:
    """Unnormalised probabilities of the kept tokens (0 elsewhere) for sampled rows."""
    temp_B = jnp.where(rows.temperature_B > 0, rows.temperature_B, 1.0)
    z_BV = logits_BV / temp_B[:, None]
    e_BV = jnp.exp(z_BV - jnp.max(z_BV, axis=-1, keepdims=True))
    probs_BV = e_BV / jnp.sum(e_BV, axis=-1, keepdims=True)
    zero_B = jnp.zeros(probs_BV.shape[:1], jnp.float32)
    sampled_B = rows.temperature_B > 0
    use_k = jnp.any(sampled_B & (rows.top_k_B > 0))
    t_k = jax.lax.cond(use_k, lambda: top_k_threshold(probs_BV, rows.top_k_B), lambda: zero_B)
    use_p = jnp.any(sampled_B & (rows.top_p_B < 1.0))
    t_p = jax.lax.cond(use_p, lambda: top_p_threshold(probs_BV, t_k, rows.top_p_B), lambda: zero_B)
    t_m = rows.min_p_B * jnp.max(probs_BV, axis=-1)
    t_p = jnp.where(rows.top_p_B < 1.0, t_p, 0.0)
    t_B = jnp.maximum(jnp.maximum(t_k, t_p), t_m)
    return jnp.where(probs_BV >= t_B[:, None], probs_BV, 0.0)


def inverse_cdf(weights_BV: jax.Array, u_B: jax.Array) -> jax.Array:
    """Token index drawn with probability weights/sum(weights), given one uniform per row."""
    B, V = weights_BV.shape
    nb = -(-V // BLOCK)
    w_BV = jnp.pad(weights_BV, ((0, 0), (0, nb * BLOCK - V)))
    w_BnK = w_BV.reshape(B, nb, BLOCK)
    cum_Bn = jnp.cumsum(jnp.sum(w_BnK, axis=-1), axis=-1)
    r_B = u_B * cum_Bn[:, -1]
    last_block_B = _last_positive(cum_Bn - jnp.pad(cum_Bn, ((0, 0), (1, 0)))[:, :-1])
    blk_B = jnp.minimum(jnp.sum(cum_Bn <= r_B[:, None], axis=-1), last_block_B)
    before_B = jnp.where(
        blk_B > 0, jnp.take_along_axis(cum_Bn, jnp.maximum(blk_B - 1, 0)[:, None], 1)[:, 0], 0.0
    )
    inner_BK = jnp.take_along_axis(w_BnK, blk_B[:, None, None], axis=1)[:, 0]
    cum_BK = jnp.cumsum(inner_BK, axis=-1)
    idx_B = jnp.minimum(
        jnp.sum(cum_BK <= (r_B - before_B)[:, None], axis=-1), _last_positive(inner_BK)
    )
    return (blk_B * BLOCK + idx_B).astype(jnp.int32)


def _last_positive(w_BX: jax.Array) -> jax.Array:
    X = w_BX.shape[-1]
    return jnp.max(jnp.where(w_BX > 0, jnp.arange(X), 0), axis=-1)


def sample(logits_BV: jax.Array, rows: RowSampling, u_B: jax.Array) -> jax.Array:
    """Next token per row: argmax for temperature 0, else a draw from the filtered softmax."""
    greedy_B = jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    any_sampled = jnp.any(rows.temperature_B > 0)
    drawn_B = jax.lax.cond(
        any_sampled, lambda: inverse_cdf(filtered_probs(logits_BV, rows), u_B), lambda: greedy_B
    )
    return jnp.where(rows.temperature_B > 0, drawn_B, greedy_B)
