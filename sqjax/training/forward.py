"""The training forward pass: per-token log-probabilities of next-token targets.

With `remat` set, each decoder block's activations are recomputed in the backward pass
instead of stored (Decoder.hidden's `remat` policy); `tests/test_training_step.py` checks
both paths give equal losses and gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sqjax.models.decoder import Decoder

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


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
    h_BLD = model.hidden(
        tokens_BL, positions_BL=positions_BL, segment_ids_BL=segment_ids_BL, remat=REMAT_POLICIES[remat]
    )
    return token_logprobs(model.logits(h_BLD), targets_BL)
