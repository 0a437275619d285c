"""`train(cfg)`: the one call a stage or a notebook makes to run SFT, DPO or a score-head
regression."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from flax import nnx

from sqjax.models.config import parse_dtype
from sqjax.models.decoder import Decoder
from sqjax.sharding import TRAIN_RULES, shard_model
from sqjax.training.config import TrainConfig, TrainResult, micro_batches
from sqjax.training.loop import mesh_for, run
from sqjax.training.regression import with_score_head


def with_precision(model: Decoder, compute_dtype: str | None) -> Decoder:
    """The same weights as float32 master parameters computing in `compute_dtype`."""
    if compute_dtype is None:
        return model
    cfg = model.config.replace(dtype=compute_dtype, param_dtype="float32")
    parse_dtype(compute_dtype)
    _, params = nnx.split(model, nnx.Param)
    twin = nnx.eval_shape(lambda: Decoder(cfg, nnx.Rngs(0)))
    nnx.update(twin, jax.tree.map(lambda x: x.astype(parse_dtype("float32")), params))
    return twin


def _load(cfg: TrainConfig, mesh) -> tuple[Decoder, Any]:
    """The model (float32 master weights) and tokenizer named by the config."""
    import sqjax

    if isinstance(cfg.model, Decoder):
        model = cfg.model
    else:
        dtype = cfg.compute_dtype or "float32"
        model = sqjax.load_model(
            cfg.model, dtype=dtype, param_dtype="float32", mesh=mesh, rules=TRAIN_RULES
        )
    if cfg.loss == "regression":
        model = with_score_head(model)
    tokenizer = cfg.tokenizer if cfg.tokenizer is not None else cfg.model
    if not hasattr(tokenizer, "apply_chat_template"):
        tokenizer = sqjax.load_tokenizer(tokenizer)
    return model, tokenizer


def train(cfg: TrainConfig) -> TrainResult:
    """Runs (or resumes, from the latest checkpoint under cfg.output_dir) one training run."""
    mesh = mesh_for(cfg)
    rows = mesh.shape["data"] * mesh.shape["fsdp"]
    cfg = dataclasses.replace(cfg, accum_steps=micro_batches(cfg.batch_size, cfg.accum_steps, rows))
    model, tokenizer = _load(cfg, mesh)
    model = with_precision(model, cfg.compute_dtype).with_attention(
        cfg.attention, cfg.attention_block
    )
    model = shard_model(model, mesh, TRAIN_RULES)
    return run(cfg, model, tokenizer, mesh)
