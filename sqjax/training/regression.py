"""Regression with a scalar score head: the difficulty scorer's loss, inputs and model.

The model is the LM's decoder with its LM head replaced by a one-output score head
(initialised to zero), read at each text's last token (`Decoder.score`). The loss is the mean
squared error over real rows, computed in float32: the objective returns the sum of squared
errors and the row count, and the train step divides by the step's total count, so gradient
accumulation equals one big batch.

Rows (JSONL): `text` and `label` (a float). A text is the bare question with the tokenizer's
own BOS if any (`text_encoder`), cut to `seq_len` tokens. Batch keys: `tokens`, `segment_ids`
([B, L] int32, right-padded; segment_ids 1 on real tokens, 0 on padding), `labels` and
`weights` ([B] float32; weight 0 on the rows that pad the last batch). Every batch has the
same L, the smallest power of two (>= 16) holding the longest text, so the step compiles once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sqjax.errors import SqjaxError
from sqjax.models.decoder import Decoder
from sqjax.training.forward import REMAT_POLICIES
from sqjax.training.sft import Objective

FIELDS = ("text", "label")
Encode = Callable[[str], list[int]]


def text_encoder(tokenizer: Any) -> Encode:
    """How the scorer reads a question: the bare text, with the tokenizer's own BOS if any."""
    return lambda text: list(tokenizer(text.strip())["input_ids"])


def with_score_head(lm: Decoder) -> Decoder:
    """A score-head twin of `lm`: same decoder weights, zero one-output head (`lm` itself
    when it already has a score head)."""
    if lm.config.head == "score":
        return lm
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


def regression_objective(remat: str = "none") -> Objective:
    """An objective for the train step: (sum of squared errors, (rows, {})); `remat` as in
    sqjax.training.forward (each block's activations recomputed in the backward pass)."""
    policy = REMAT_POLICIES[remat]

    def objective(model: Decoder, batch: dict):
        pred_B = model.score(batch["tokens"], batch["segment_ids"], remat=policy)
        w_B = batch["weights"].astype(jnp.float32)
        sse = jnp.sum(w_B * (pred_B.astype(jnp.float32) - batch["labels"]) ** 2)
        return sse, (jnp.sum(w_B), {})

    return objective


def length_bucket(n: int, max_len: int) -> int:
    """The padded length of a batch whose longest text has n tokens."""
    return min(max_len, max(16, 1 << max(n - 1, 0).bit_length()))


def encode_rows(
    encode: Encode, texts: Sequence[str], max_len: int, rows: int, length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(tokens_BL, segment_ids_BL) right-padded to `length` (default: the bucket of the
    longest text), B = `rows`; extra rows are padding but one token, so every row has a last
    real token."""
    seqs = [encode(t)[:max_len] or [0] for t in texts]
    L = length or length_bucket(max(len(s) for s in seqs), max_len)
    tokens_BL = np.zeros((rows, L), np.int32)
    segment_ids_BL = np.zeros((rows, L), np.int32)
    segment_ids_BL[:, 0] = 1
    for b, s in enumerate(seqs):
        tokens_BL[b, : len(s)] = s
        segment_ids_BL[b, : len(s)] = 1
    return tokens_BL, segment_ids_BL


def _collate(items: Sequence[tuple], rows: int, length: int) -> dict[str, np.ndarray]:
    tokens_BL = np.zeros((rows, length), np.int32)
    segment_ids_BL = np.zeros((rows, length), np.int32)
    segment_ids_BL[:, 0] = 1
    labels_B, weights_B = np.zeros(rows, np.float32), np.zeros(rows, np.float32)
    for b, (ids, label) in enumerate(items):
        tokens_BL[b, : len(ids)] = ids
        segment_ids_BL[b, : len(ids)] = 1
        labels_B[b], weights_B[b] = label, 1.0
    return {
        "tokens": tokens_BL,
        "segment_ids": segment_ids_BL,
        "labels": labels_B,
        "weights": weights_B,
    }


def regression_iterator(
    rows: Sequence[dict], tokenizer: Any, seq_len: int, batch_size: int, *, seed: int, epochs: int
) -> tuple[grain.DatasetIterator, int]:
    """(Grain iterator of global batches, number of batches): the rows shuffled with `seed`
    once per epoch, `batch_size` per batch, the last batch of each epoch padded with weight-0
    rows."""
    encode = text_encoder(tokenizer)
    items = [(encode(r["text"])[:seq_len] or [0], float(r["label"])) for r in rows]
    if not items:
        raise SqjaxError("no regression rows; point `data` at a JSONL file of {text, label}")
    length = length_bucket(max(len(ids) for ids, _ in items), seq_len)
    per_epoch = -(-len(items) // batch_size)
    epoch = grain.MapDataset.source(items)
    ds = grain.MapDataset.concatenate(
        [
            epoch.shuffle(seed + e).batch(
                batch_size, batch_fn=lambda xs: _collate(xs, batch_size, length)
            )
            for e in range(epochs)
        ]
    )
    return iter(ds.to_iter_dataset()), per_epoch * epochs


_SCORE_CACHE: dict[Any, Callable] = {}


def _score_fn(graphdef: Any) -> Callable:
    """The jitted score of a model structure, built once per structure: each (rows, length)
    shape then compiles once, however many times `predict` is called."""
    if graphdef not in _SCORE_CACHE:
        _SCORE_CACHE[graphdef] = jax.jit(
            lambda state, ids, seg: nnx.merge(graphdef, state).score(ids, seg)
        )
    return _SCORE_CACHE[graphdef]


def predict(
    model: Decoder,
    encode: Encode,
    texts: Sequence[str],
    *,
    batch_size: int,
    max_len: int,
    mesh: Any = None,
) -> np.ndarray:
    """The model's score (e.g. predicted fail rate) of each text, [len(texts)] float32. Rows
    per call are `batch_size` rounded up to the mesh's data rows."""
    if not texts:
        return np.zeros(0, np.float32)
    graphdef, state = nnx.split(model)
    score = _score_fn(graphdef)
    rows = batch_size if mesh is None else -(-batch_size // _data_rows(mesh)) * _data_rows(mesh)
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        arrays = encode_rows(encode, chunk, max_len, rows)
        out.append(np.asarray(score(state, *_put(mesh, *arrays)))[: len(chunk)])
    return np.concatenate(out).astype(np.float32)


def _data_rows(mesh: Any) -> int:
    return int(mesh.shape["data"] * mesh.shape["fsdp"])


def _put(mesh: Any, *arrays: np.ndarray) -> list[Any]:
    if mesh is None:
        return [jnp.asarray(a) for a in arrays]
    from sqjax.sharding import batch_sharding

    return [jax.device_put(a, batch_sharding(mesh, a.ndim)) for a in arrays]
