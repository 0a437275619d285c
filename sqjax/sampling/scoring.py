"""Scoring without sampling: log-probs of given completions, P("Yes"), reward-model scores.

Rows are sorted by length, grouped into batches of at most `batch_size` (padded to a power of
two rows, a multiple of the mesh's data rows) and right-padded to a length bucket, so a
handful of programs compile. Log-probs come from the model's raw log-softmax, computed
64 positions at a time so [B, L, V] logits never exist at once (`sqjax.models.head`).
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sqjax.models import kernels
from sqjax.models.head import head_logprobs
from sqjax.sampling.engine import bucket, pow2, round_up
from sqjax.sharding import BATCH, batch_sharding, on_mesh

TRACES: collections.Counter = collections.Counter()
CHUNK = 64


@functools.partial(jax.jit, static_argnums=(0,))
def token_logprobs(graphdef, weights, ids_BL, mask_BL):
    """log p(ids[t+1] | ids[:t+1]) at every t (0 where t+1 is padding or past the end)."""
    TRACES["logprobs"] += 1
    model = nnx.merge(graphdef, weights)
    h_BLD = model.hidden(ids_BL, mask_BL)
    target_BL = jnp.pad(ids_BL[:, 1:], ((0, 0), (0, 1)))
    valid_BL = jnp.pad(mask_BL[:, 1:], ((0, 0), (0, 1))) > 0
    lp_BL = head_logprobs(model, h_BLD, target_BL, CHUNK)
    return jnp.where(valid_BL, lp_BL, 0.0)


@functools.partial(jax.jit, static_argnums=(0,))
def next_token_logprobs(graphdef, weights, ids_BL, mask_BL):
    """Raw log-softmax [B, V] of the token after each row's last real token."""
    TRACES["next"] += 1
    model = nnx.merge(graphdef, weights)
    h_BLD = model.hidden(ids_BL, mask_BL)
    last_B = jnp.sum(mask_BL, axis=-1) - 1
    h_B1D = jnp.take_along_axis(h_BLD, last_B[:, None, None], axis=1)
    return jax.nn.log_softmax(model.logits(h_B1D)[:, 0], axis=-1)


@functools.partial(jax.jit, static_argnums=(0,))
def rewards(graphdef, weights, ids_BL, mask_BL):
    TRACES["score"] += 1
    return nnx.merge(graphdef, weights).score(ids_BL, mask_BL)


class Batcher:
    """Runs a scoring program over padded batches on an LLM handle's weights and mesh."""

    def __init__(self, llm, batch_size: int = 16):
        self.graphdef, self.weights, self.mesh = llm.graphdef, llm.weights, llm.mesh
        self.config = llm.config
        mesh = self.mesh
        self.rows = 1 if mesh is None else int(np.prod([mesh.shape[a] for a in BATCH]))
        self.batch_size = batch_size

    def run(self, program, sequences: list[list[int]]) -> list[np.ndarray]:
        """program(graphdef, weights, ids_BL, mask_BL) per batch; one result row per sequence."""
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        out: list[np.ndarray | None] = [None] * len(sequences)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            B = round_up(pow2(len(idx)), self.rows)
            L = bucket(max(len(sequences[i]) for i in idx))
            ids_BL = np.zeros((B, L), np.int32)
            mask_BL = np.zeros((B, L), np.int32)
            mask_BL[len(idx) :, 0] = 1  # padding rows hold one token so every row is well defined
            for r, i in enumerate(idx):
                ids_BL[r, : len(sequences[i])] = sequences[i]
                mask_BL[r, : len(sequences[i])] = 1
            if self.mesh is not None:
                ids_BL, mask_BL = jax.device_put((ids_BL, mask_BL), batch_sharding(self.mesh, 2))
            with on_mesh(self.mesh):  # the attention kernels run per shard of the mesh
                result_BX = program(self.graphdef, self.weights, ids_BL, mask_BL)
            kernels.note("score", self.config, L, False, self.mesh)
            result = np.asarray(jax.device_get(result_BX))
            for r, i in enumerate(idx):
                out[i] = result[r]
        return out
