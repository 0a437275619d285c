"""The difficulty scorer: fail-rate labels, a decoder + scalar head regressor trained with MSE,
and the rank correlation used to check it.

Labels: a question's fail rate is 1 - (correct samples / samples) of a solver's answers,
graded against the gold answer (sqjax.grading). The regressor is the LM's decoder with its LM
head replaced by a one-output score head (initialised to zero), read at the question's last
token (`Decoder.score`); all weights are trained with AdamW, warmup + cosine, on the mean
squared error. It exports as an HF `*ForSequenceClassification` directory, so `load_model`
reads it back. The paper gives this design (DeepSeekMath-7B-Base + scalar head, MSE) but no
settings; every number is the config's.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from sqjax.models.decoder import Decoder

Encode = Callable[[str], list[int]]


def fail_rate(correct: Sequence[bool]) -> float:
    """1 - pass rate of a question's graded samples."""
    return 1.0 - sum(bool(c) for c in correct) / len(correct)


def ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), np.float64)
    r[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tie = x == value
        r[tie] = r[tie].mean()
    return r


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson of average ranks); nan when either is constant."""
    ra, rb = ranks(a), ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def heldout_ids(ids: Sequence[str], share: float, minimum: int = 2) -> set[str]:
    """A fixed split by id hash: the `max(minimum, round(share * n))` ids with the smallest
    hashes are held out (none when fewer than 2 * minimum ids)."""
    if len(ids) < 2 * minimum:
        return set()
    by_hash = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).digest())
    return set(by_hash[: max(minimum, round(share * len(ids)))])


def cast_model(model: Decoder, dtype: str) -> Decoder:
    """A copy with parameters and compute in `dtype` (for export)."""
    cfg = model.config.replace(dtype=dtype, param_dtype=dtype)
    _, params = nnx.split(model, nnx.Param)
    twin = nnx.eval_shape(lambda: Decoder(cfg, nnx.Rngs(0)))
    nnx.update(twin, jax.tree.map(lambda x: x.astype(jnp.dtype(dtype)), params))
    return twin


def score_model_from_lm(lm: Decoder) -> Decoder:
    """A score-head twin of `lm`: same decoder weights, zero one-output head."""
    cfg = lm.config.replace(head="score", num_labels=1)
    _, params = nnx.split(lm, nnx.Param)
    params = nnx.State({k: v for k, v in params.items() if k != "lm_head"})
    twin = nnx.eval_shape(lambda: Decoder(cfg, nnx.Rngs(0)))
    nnx.update(twin, params)
    dtype = jnp.dtype(lm.embed[...].dtype)
    twin.score_head = nnx.Param(
        jnp.zeros((cfg.hidden_size, 1), dtype), logical_axes=("embed", None)
    )
    return twin


def _bucket(n: int, max_len: int) -> int:
    return min(max_len, max(16, 1 << max(n - 1, 0).bit_length()))


def encode_rows(
    encode: Encode, texts: Sequence[str], max_len: int, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ids_BL, mask_BL) right-padded to a length bucket, B = `rows` (extra rows all padding
    but one token, so every row has a last real token)."""
    seqs = [encode(t)[:max_len] or [0] for t in texts]
    L = _bucket(max(len(s) for s in seqs), max_len)
    ids_BL = np.zeros((rows, L), np.int32)
    mask_BL = np.zeros((rows, L), np.int32)
    mask_BL[:, 0] = 1
    for b, s in enumerate(seqs):
        ids_BL[b, : len(s)] = s
        mask_BL[b, : len(s)] = 1
    return ids_BL, mask_BL


def _row_multiple(mesh: Any) -> int:
    if mesh is None:
        return 1
    return int(mesh.shape["data"] * mesh.shape["fsdp"])


def _put(mesh: Any, *arrays: np.ndarray) -> list[Any]:
    if mesh is None:
        return [jnp.asarray(a) for a in arrays]
    from sqjax.sharding import batch_sharding

    return [jax.device_put(a, batch_sharding(mesh, a.ndim)) for a in arrays]


def _batches(n: int, batch_size: int, mesh: Any) -> tuple[int, int]:
    mult = _row_multiple(mesh)
    return batch_size, -(-batch_size // mult) * mult


def regressor_step(graphdef: Any, rest: Any, *, lr: float, total: int, warmup: int):
    """(jitted step(params, opt_state, ids_BL, mask_BL, y_B, w_B) -> (params, opt_state,
    loss), optimizer): AdamW with warmup + cosine on the weighted MSE of the score head.
    `sqjax plan` compiles the same step."""
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total, 0.0)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, weight_decay=0.0))

    def loss_fn(p, ids_BL, mask_BL, y_B, w_B):
        pred_B = nnx.merge(graphdef, p, rest).score(ids_BL, mask_BL)
        return jnp.sum(w_B * (pred_B - y_B) ** 2) / jnp.maximum(jnp.sum(w_B), 1.0)

    @jax.jit
    def step(p, s, ids_BL, mask_BL, y_B, w_B):
        loss, grads = jax.value_and_grad(loss_fn)(p, ids_BL, mask_BL, y_B, w_B)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    return step, opt


def train_regressor(
    model: Decoder,
    encode: Encode,
    texts: Sequence[str],
    labels: Sequence[float],
    *,
    lr: float,
    epochs: int,
    warmup_ratio: float,
    batch_size: int,
    max_len: int,
    seed: int,
    mesh: Any = None,
) -> tuple[Decoder, list[float]]:
    """Trains a score-head model on (text, label) with MSE; returns it and the step losses."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    per_step, rows = _batches(len(texts), batch_size, mesh)
    steps_per_epoch = math.ceil(len(texts) / per_step)
    total = max(1, steps_per_epoch * epochs)
    step, opt = regressor_step(graphdef, rest, lr=lr, total=total, warmup=int(warmup_ratio * total))
    opt_state = opt.init(params)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(texts))
        for start in range(0, len(texts), per_step):
            idx = order[start : start + per_step]
            ids_BL, mask_BL = encode_rows(encode, [texts[i] for i in idx], max_len, rows)
            y_B = np.zeros(rows, np.float32)
            w_B = np.zeros(rows, np.float32)
            y_B[: len(idx)] = [labels[i] for i in idx]
            w_B[: len(idx)] = 1.0
            params, opt_state, loss = step(
                params, opt_state, *_put(mesh, ids_BL, mask_BL, y_B, w_B)
            )
            losses.append(float(loss))
    return nnx.merge(graphdef, params, rest), losses


def predict(
    model: Decoder,
    encode: Encode,
    texts: Sequence[str],
    *,
    batch_size: int,
    max_len: int,
    mesh: Any = None,
) -> np.ndarray:
    """The model's score (predicted fail rate) of each text, [len(texts)] float32."""
    if not texts:
        return np.zeros(0, np.float32)
    graphdef, state = nnx.split(model)
    score = jax.jit(lambda s, ids, mask: nnx.merge(graphdef, s).score(ids, mask))
    per_step, rows = _batches(len(texts), batch_size, mesh)
    out = []
    for start in range(0, len(texts), per_step):
        chunk = list(texts[start : start + per_step])
        ids_BL, mask_BL = encode_rows(encode, chunk, max_len, rows)
        out.append(np.asarray(score(state, *_put(mesh, ids_BL, mask_BL)))[: len(chunk)])
    return np.concatenate(out).astype(np.float32)


def text_encoder(tokenizer: Any) -> Encode:
    """How the scorer reads a question: the bare text, with the tokenizer's own BOS if any."""
    return lambda text: list(tokenizer(text.strip())["input_ids"])
