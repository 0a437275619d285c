"""Preference losses (DPO and variants), one pure function each, in float32.

Each variant takes `PairLogps` (summed log-probabilities of the completion tokens of each
chosen and rejected sequence, under the policy and the frozen reference) and returns
`(loss, metrics)`, the loss averaged over pairs. With h = (pi_c - ref_c) - (pi_r - ref_r):
  sigmoid (Rafailov et al.):  -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)
  ipo (Azar et al.):          (h - 1 / (2 beta))^2
  hinge (SLiC):               max(0, 1 - beta h)
`reference_free` zeroes the reference terms (the policy's own log-ratio only).

Batch keys: `chosen_*` and `rejected_*` rows ([B, L], right-padded, one example per row; the
keys of sqjax/training/sft.py), with weights on the completion tokens, plus `ref_chosen` and
`ref_rejected` ([B], from `reference_logprobs` or an outside scorer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
from flax import nnx, struct
from jax.sharding import Mesh

from sqjax.models import kernels
from sqjax.models.decoder import Decoder
from sqjax.sharding import on_mesh
from sqjax.training.forward import LOGITS_CHUNK, target_logprobs
from sqjax.training.sft import Objective

ROW_KEYS = ("tokens", "positions", "segment_ids", "targets", "weights")


@struct.dataclass
class PairLogps:
    policy_chosen_B: jax.Array
    policy_rejected_B: jax.Array
    reference_chosen_B: jax.Array
    reference_rejected_B: jax.Array


def reference_free(lp: PairLogps) -> PairLogps:
    """The same pairs with the reference log-probabilities set to zero."""
    zeros_B = jnp.zeros_like(lp.reference_chosen_B)
    return lp.replace(reference_chosen_B=zeros_B, reference_rejected_B=zeros_B)


def _logratio_B(lp: PairLogps) -> jax.Array:
    chosen_B = lp.policy_chosen_B - lp.reference_chosen_B
    rejected_B = lp.policy_rejected_B - lp.reference_rejected_B
    return (chosen_B - rejected_B).astype(jnp.float32)


def _metrics(lp: PairLogps, beta: float, losses_B: jax.Array) -> tuple[jax.Array, dict]:
    chosen_B = beta * (lp.policy_chosen_B - lp.reference_chosen_B).astype(jnp.float32)
    rejected_B = beta * (lp.policy_rejected_B - lp.reference_rejected_B).astype(jnp.float32)
    loss = jnp.mean(losses_B)
    return loss, {
        "loss": loss,
        "rewards_chosen": jnp.mean(chosen_B),
        "rewards_rejected": jnp.mean(rejected_B),
        "margin": jnp.mean(chosen_B - rejected_B),
        "accuracy": jnp.mean((chosen_B > rejected_B).astype(jnp.float32)),
    }


def sigmoid_loss(lp: PairLogps, *, beta: float = 0.1, label_smoothing: float = 0.0):
    """DPO's logistic loss, with conservative label smoothing eps."""
    z_B = beta * _logratio_B(lp)
    losses_B = -(1 - label_smoothing) * jax.nn.log_sigmoid(
        z_B
    ) - label_smoothing * jax.nn.log_sigmoid(-z_B)
    return _metrics(lp, beta, losses_B)


def ipo_loss(lp: PairLogps, *, beta: float = 0.1, label_smoothing: float = 0.0):
    """IPO's squared loss toward a log-ratio margin of 1 / (2 beta) (no smoothing)."""
    del label_smoothing
    return _metrics(lp, beta, (_logratio_B(lp) - 1 / (2 * beta)) ** 2)


def hinge_loss(lp: PairLogps, *, beta: float = 0.1, label_smoothing: float = 0.0):
    """SLiC's hinge loss on the scaled log-ratio (no smoothing)."""
    del label_smoothing
    return _metrics(lp, beta, jax.nn.relu(1 - beta * _logratio_B(lp)))


VARIANTS: dict[str, Callable[..., tuple[jax.Array, dict]]] = {
    "sigmoid": sigmoid_loss,
    "ipo": ipo_loss,
    "hinge": hinge_loss,
}


def sequence_logps(
    model: Decoder, rows: dict, remat: str = "none", logits_chunk: int = LOGITS_CHUNK
) -> jax.Array:
    """[B] summed log-probabilities of each row's weighted targets."""
    logp_BL = target_logprobs(model, rows, remat, logits_chunk)
    return jnp.sum(logp_BL * rows["weights"].astype(jnp.float32), axis=-1)


def _both_logps(
    model: Decoder, batch: dict, remat: str = "none", logits_chunk: int = LOGITS_CHUNK
) -> tuple[jax.Array, jax.Array]:
    rows = {k: jnp.concatenate([batch[f"chosen_{k}"], batch[f"rejected_{k}"]]) for k in ROW_KEYS}
    logps_2B = sequence_logps(model, rows, remat, logits_chunk)
    B = batch["chosen_tokens"].shape[0]
    return logps_2B[:B], logps_2B[B:]


def dpo_objective(
    variant: str,
    beta: float,
    label_smoothing: float = 0.0,
    ref_free: bool = False,
    remat: str = "none",
    logits_chunk: int = LOGITS_CHUNK,
) -> Objective:
    """An objective for the train step: (loss sum, (pair count, metric sums))."""
    loss_fn = functools.partial(VARIANTS[variant], beta=beta, label_smoothing=label_smoothing)

    def objective(model: Decoder, batch: dict):
        chosen_B, rejected_B = _both_logps(model, batch, remat, logits_chunk)
        lp = PairLogps(chosen_B, rejected_B, batch["ref_chosen"], batch["ref_rejected"])
        loss, metrics = loss_fn(reference_free(lp) if ref_free else lp)
        pairs = jnp.asarray(chosen_B.shape[0], jnp.float32)
        sums = {k: v * pairs for k, v in metrics.items() if k != "loss"}
        return loss * pairs, (pairs, sums)

    return objective


@nnx.jit
def _reference_step(model: Decoder, batch: dict) -> tuple[jax.Array, jax.Array]:
    return _both_logps(model, batch)


def reference_logprobs(
    model: Decoder, batches: Iterable[dict], mesh: Mesh | None = None
) -> list[dict]:
    """Reference log-probabilities for each batch, from one frozen forward pass (traced
    under `mesh`, the one the model's weights are on).

    Returns, per batch, `{"ref_chosen": [B], "ref_rejected": [B]}` (numpy), to be merged
    into the batch the train step sees.
    """
    out = []
    for batch in batches:
        rows = {k: batch[k] for k in batch if not k.startswith("ref_")}
        with on_mesh(mesh):
            chosen_B, rejected_B = _reference_step(model, rows)
        kernels.note("reference", model.config, rows["chosen_tokens"].shape[-1], True, mesh)
        out.append(
            {"ref_chosen": jax.device_get(chosen_B), "ref_rejected": jax.device_get(rejected_B)}
        )
    return out
