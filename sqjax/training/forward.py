"""The training forward pass: per-token log-probabilities of next-token targets.

With `remat` set, each decoder block is wrapped in `nnx.remat` so its activations are
recomputed in the backward pass instead of stored. Decoder.hidden has no hook for this, so
the remat path walks the same pieces it does (embedding, RoPE tables, blocks, final norm);
`tests/test_training_step.py` checks both paths give equal losses and gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sqjax.models.decoder import Decoder
from sqjax.models.layers import rope_tables

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _remat_hidden(model: Decoder, tokens_BL, positions_BL, segment_ids_BL, policy):
    x_BLD = model._embed(tokens_BL)
    cos, sin = rope_tables(model.config, jnp.maximum(positions_BL, 0))

    @nnx.remat(policy=policy)
    def run_block(block, x_BLD):
        return block(x_BLD, positions_BL, cos, sin, seg_BL=segment_ids_BL)[0]

    for block in model.layers:
        x_BLD = run_block(block, x_BLD)
    return model.final_norm(x_BLD)


def token_logprobs(logits_BLV: jax.Array, targets_BL: jax.Array) -> jax.Array:
    """log p(targets[b, t]) under logits[b, t], in float32."""
    logits_BLV = logits_BLV.astype(jnp.float32)
    lse_BL = jax.nn.logsumexp(logits_BLV, axis=-1)
    picked_BL = jnp.take_along_axis(logits_BLV, targets_BL[..., None], axis=-1)[..., 0]
    return picked_BL - lse_BL


def target_logprobs(
    model: Decoder,
    tokens_BL: jax.Array,
    positions_BL: jax.Array,
    segment_ids_BL: jax.Array,
    targets_BL: jax.Array,
    remat: str = "none",
) -> jax.Array:
    """float32 [B, L] log-probabilities of `targets_BL` for packed or padded rows."""
    if remat not in REMAT_POLICIES:
        raise ValueError(f"remat={remat!r} is not one of {tuple(REMAT_POLICIES)}")
    if remat == "none":
        h_BLD = model.hidden(tokens_BL, positions_BL=positions_BL, segment_ids_BL=segment_ids_BL)
    else:
        h_BLD = _remat_hidden(model, tokens_BL, positions_BL, segment_ids_BL, REMAT_POLICIES[remat])
    return token_logprobs(model.logits(h_BLD), targets_BL)
