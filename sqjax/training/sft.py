"""Supervised fine-tuning loss: masked next-token cross-entropy in float32.

Batch keys (all [B, L], right-padded; see sqjax/data/packing.py for the conventions):
`tokens`, `positions` (restart at 0 per packed segment), `segment_ids` (0 on padding),
`targets` (next token within the segment) and `weights` (1 where the target is in the loss:
every token in full-sequence mode, completion tokens in completion-only mode).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from sqjax.models.decoder import Decoder
from sqjax.training.forward import LOGITS_CHUNK, target_logprobs

Objective = Callable[[Decoder, dict], tuple[jax.Array, tuple[jax.Array, dict]]]


def sft_loss(logp_BL: jax.Array, weights_BL: jax.Array) -> tuple[jax.Array, dict]:
    """Mean negative log-likelihood over the weighted targets, and its sum and count."""
    weights_BL = weights_BL.astype(jnp.float32)
    nll_sum = -jnp.sum(logp_BL.astype(jnp.float32) * weights_BL)
    count = jnp.sum(weights_BL)
    return nll_sum / jnp.maximum(count, 1.0), {"nll_sum": nll_sum, "targets": count}


def sft_objective(remat: str = "none", logits_chunk: int = LOGITS_CHUNK) -> Objective:
    """An objective for the train step: (loss sum, (target count, metric sums)).

    The step divides sums by the target count of the whole step, so gradient accumulation
    normalises by the total number of target tokens, not by a mean of micro-batch means.
    """

    def objective(model: Decoder, batch: dict):
        logp_BL = target_logprobs(model, batch, remat, logits_chunk)
        _, metrics = sft_loss(logp_BL, batch["weights"])
        return metrics["nll_sum"], (metrics["targets"], {})

    return objective
