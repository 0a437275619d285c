"""Log-probabilities of target tokens from final hidden states, the LM head run in chunks of
positions so [B, L, V] float32 logits never exist at once (training, reference passes and
scoring share it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from sqjax.models.decoder import Decoder


def token_logprobs(logits_BLV: jax.Array, targets_BL: jax.Array) -> jax.Array:
    """log p(targets[b, t]) under logits[b, t], in float32 (any leading shape: the sampler
    calls it on [B, V] raw logits, before temperature and filters, with [B] tokens)."""
    logits_BLV = logits_BLV.astype(jnp.float32)
    lse_BL = jax.nn.logsumexp(logits_BLV, axis=-1)
    picked_BL = jnp.take_along_axis(logits_BLV, targets_BL[..., None], axis=-1)[..., 0]
    return picked_BL - lse_BL


def head_logprobs(model: Decoder, h_BLD: jax.Array, targets_BL: jax.Array, chunk: int) -> jax.Array:
    """log p(targets) from final hidden states, `chunk` positions at a time when the sequence
    is longer (0: all at once); each chunk is recomputed in a backward pass instead of stored."""
    B, L, D = h_BLD.shape
    if chunk <= 0 or L <= chunk:
        return token_logprobs(model.logits(h_BLD), targets_BL)
    n = -(-L // chunk)
    pad = n * chunk - L
    h_NBCD = jnp.pad(h_BLD, ((0, 0), (0, pad), (0, 0))).reshape(B, n, chunk, D).swapaxes(0, 1)
    t_NBC = jnp.pad(targets_BL, ((0, 0), (0, pad))).reshape(B, n, chunk).swapaxes(0, 1)

    @jax.checkpoint
    def one(h_BCD, t_BC):
        return token_logprobs(model.logits(h_BCD), t_BC)

    logp_NBC = jax.lax.map(lambda args: one(*args), (h_NBCD, t_NBC))
    return logp_NBC.swapaxes(0, 1).reshape(B, n * chunk)[:, :L]
