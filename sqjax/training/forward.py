"""The training forward pass: per-token log-probabilities of next-token targets.

With `remat` set, each decoder block's activations are recomputed in the backward pass
instead of stored (Decoder.hidden's `remat` policy); `tests/test_training_step.py` checks
both paths give equal losses and gradients.

The LM head runs over `logits_chunk` positions at a time (`sqjax.models.head`), each chunk's
logits recomputed in the backward pass, so no pass holds float32 logits for the whole
sequence: for Qwen2-Math (vocabulary 152K) at 4,096 tokens those are 2.5 GB per row, and as
much again for their gradient. The cost is one more LM-head matmul in the backward pass (~3%
of a step of a 7B model); `tests/test_training_chunked_head.py` checks values, gradients and
memory.
"""

from __future__ import annotations

import jax

from sqjax.models.decoder import Decoder
from sqjax.models.head import head_logprobs
from sqjax.training.config import LOGITS_CHUNK

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def target_logprobs(
    model: Decoder, rows: dict, remat: str = "none", logits_chunk: int = LOGITS_CHUNK
) -> jax.Array:
    """float32 [B, L] log-probabilities of rows["targets"] for packed or padded rows (the
    `tokens`, `positions`, `segment_ids` and `targets` arrays of sqjax/data/packing.py)."""
    if remat not in REMAT_POLICIES:
        raise ValueError(f"remat={remat!r} is not one of {tuple(REMAT_POLICIES)}")
    h_BLD = model.hidden(
        rows["tokens"],
        positions_BL=rows["positions"],
        segment_ids_BL=rows["segment_ids"],
        remat=REMAT_POLICIES[remat],
    )
    return head_logprobs(model, h_BLD, rows["targets"], logits_chunk)
