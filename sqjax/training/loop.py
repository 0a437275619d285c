"""The training loop: data, state, jitted step, checkpoints, logging and export."""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sqjax import paths
from sqjax.data.jsonl import atomic_write_bytes, read_jsonl
from sqjax.errors import SqjaxError
from sqjax.models import kernels
from sqjax.models.decoder import Decoder
from sqjax.sharding import make_mesh
from sqjax.training import inputs, regression
from sqjax.training.checkpointing import Checkpointer
from sqjax.training.config import TrainConfig, TrainResult
from sqjax.training.dpo import dpo_objective, reference_logprobs
from sqjax.training.monitor import Monitor
from sqjax.training.optimizer import make_optimizer, schedule
from sqjax.training.sft import Objective, sft_objective
from sqjax.training.step import TrainState, batch_spec, init_state, make_train_step, state_sharding


@dataclass
class Data:
    iterator: grain.DatasetIterator
    num_batches: int
    objective: Objective


def mesh_for(cfg: TrainConfig):
    """The (data, fsdp, tensor) mesh; all-positive sizes use the first that many devices."""
    if all(s > 0 for s in cfg.mesh):
        return make_mesh(*cfg.mesh, devices=jax.devices()[: math.prod(cfg.mesh)])
    return make_mesh(*cfg.mesh)


def pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad or 0)


def _sft_data(cfg: TrainConfig, tokenizer: Any) -> Data:
    rows = inputs.load_rows(cfg.data, cfg.data_format)
    examples = inputs.sft_examples(rows, tokenizer, cfg.data_format, cfg.sft_mode)
    it, n = inputs.sft_iterator(
        examples,
        cfg.seq_len,
        cfg.batch_size,
        pack=cfg.pack,
        seed=cfg.seed,
        epochs=cfg.epochs,
        pad_id=pad_id(tokenizer),
    )
    return Data(it, n, sft_objective(cfg.remat, cfg.logits_chunk))


def _reference_table(
    cfg: TrainConfig, model: Decoder, mesh, rows: list[dict], pairs, pad: int
) -> np.ndarray:
    """[2, pairs] reference log-probs: from the rows, a saved file, or one forward pass."""
    if all("ref_chosen" in r and "ref_rejected" in r for r in rows):
        return np.asarray(
            [[r["ref_chosen"] for r in rows], [r["ref_rejected"] for r in rows]], np.float32
        )
    path = paths.as_path(cfg.output_dir) / "reference_logps.npy"
    if path.exists():
        return np.load(io.BytesIO(path.read_bytes()))
    if cfg.dpo.reference_free:
        return np.zeros((2, len(pairs)), np.float32)
    batches = inputs.reference_batches(pairs, cfg.seq_len, cfg.batch_size // cfg.accum_steps, pad)
    out = reference_logprobs(model, batches, mesh)
    table = np.stack(
        [
            np.concatenate([o["ref_chosen"] for o in out]),
            np.concatenate([o["ref_rejected"] for o in out]),
        ]
    )[:, : len(pairs)]
    if jax.process_index() == 0:
        buffer = io.BytesIO()
        np.save(buffer, table)
        atomic_write_bytes(path, buffer.getvalue())
    return table


def _dpo_data(cfg: TrainConfig, tokenizer: Any, model: Decoder, mesh) -> Data:
    rows = inputs.load_rows(cfg.data, "dpo")
    pairs, kept = inputs.dpo_examples(rows, tokenizer, cfg.seq_len)
    if not pairs:
        raise SqjaxError(
            f"every DPO pair has no completion token within seq_len={cfg.seq_len}; raise it"
        )
    table = _reference_table(cfg, model, mesh, [rows[i] for i in kept], pairs, pad_id(tokenizer))
    it, n = inputs.dpo_iterator(
        pairs,
        table[0],
        table[1],
        cfg.seq_len,
        cfg.batch_size,
        seed=cfg.seed,
        epochs=cfg.epochs,
        pad_id=pad_id(tokenizer),
    )
    d = cfg.dpo
    objective = dpo_objective(
        d.variant, d.beta, d.label_smoothing, d.reference_free, cfg.remat, cfg.logits_chunk
    )
    return Data(it, n, objective)


def _regression_data(cfg: TrainConfig, tokenizer: Any) -> Data:
    rows = [row for path in cfg.data for row in read_jsonl(path, regression.FIELDS)]
    it, n = regression.regression_iterator(
        rows, tokenizer, cfg.seq_len, cfg.batch_size, seed=cfg.seed, epochs=cfg.epochs
    )
    return Data(it, n, regression.regression_objective(cfg.remat))


def _data(cfg: TrainConfig, tokenizer: Any, model: Decoder, mesh) -> Data:
    if cfg.loss == "dpo":
        return _dpo_data(cfg, tokenizer, model, mesh)
    if cfg.loss == "regression":
        return _regression_data(cfg, tokenizer)
    return _sft_data(cfg, tokenizer)


def _device_batch(batch: dict, cfg: TrainConfig, mesh) -> dict:
    local = inputs.local_rows(batch, cfg.accum_steps, jax.process_index(), jax.process_count())
    out = {}
    for key, array in local.items():
        shape = (array.shape[0], array.shape[1] * jax.process_count(), *array.shape[2:])
        out[key] = jax.make_array_from_process_local_data(
            batch_spec(mesh, array.ndim), array, shape
        )
    return out


def _counts(batch: dict) -> tuple[int, int]:
    """(real tokens, positions) of a global batch, for tokens/s and MFU."""
    seg = [v for k, v in batch.items() if k.endswith("segment_ids")]
    return int(sum((s > 0).sum() for s in seg)), int(sum(s.size for s in seg))


def run(cfg: TrainConfig, model: Decoder, tokenizer: Any, mesh) -> TrainResult:
    """Trains `model` (already on `mesh`) as `cfg` says and returns where results went."""
    out = paths.as_path(cfg.output_dir)
    data = _data(cfg, tokenizer, model, mesh)
    total = min(data.num_batches, cfg.max_steps or data.num_batches)
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = make_optimizer(cfg.optim, total)
    sharding = state_sharding(params, optimizer, mesh)
    ckpt = Checkpointer(out / "checkpoints", cfg.keep_checkpoints, cfg.async_checkpoints)
    start = ckpt.latest_step()
    if start is None:
        state = init_state(params, optimizer, sharding)
    else:
        abstract = jax.eval_shape(
            lambda p: TrainState(jnp.zeros((), jnp.int32), p, optimizer.init(p)), params
        )
        state = ckpt.restore(start, sharding, abstract, data.iterator)
    packed = cfg.loss != "regression"  # SFT and DPO rows carry segment ids; regression a mask
    kernels.note("train_step", model.config, cfg.seq_len, packed, mesh)
    del params, model
    step_fn = None
    monitor = Monitor(out, total, start or 0, _n_params(state), cfg.progress_bar)
    loss = float("nan")
    try:
        for step in range(start or 0, total):
            batch = next(data.iterator)
            device_batch = _device_batch(batch, cfg, mesh)
            if step_fn is None:
                shapes = {k: v.shape for k, v in device_batch.items()}
                step_fn = make_train_step(
                    graphdef,
                    data.objective,
                    optimizer,
                    schedule(cfg.optim, total),
                    sharding,
                    shapes,
                    mesh,
                )
            t0 = time.perf_counter()
            state, metrics = step_fn(state, device_batch)
            metrics = jax.device_get(metrics)
            loss = float(metrics["loss"])
            if not math.isfinite(loss):
                ckpt.wait()
                raise SqjaxError(
                    f"non-finite loss ({loss}) at step {step + 1}; the last good checkpoint is step "
                    f"{ckpt.latest_step()} in {ckpt.directory}; lower the learning rate or check the data"
                )
            monitor.log(step + 1, metrics, *_counts(batch), time.perf_counter() - t0)
            if (step + 1) % cfg.save_every == 0 or step + 1 == total:
                monitor.flush()
                ckpt.save(step + 1, state, data.iterator)
        ckpt.wait()
    finally:
        monitor.close()
        ckpt.close()
    hf_dir = _export(cfg, graphdef, state, tokenizer) if cfg.export else None
    return TrainResult(total, loss, str(out), str(monitor.path), ckpt.directory, hf_dir, start)


def _n_params(state: TrainState) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))


def _export(cfg: TrainConfig, graphdef, state: TrainState, tokenizer: Any) -> str:
    import sqjax

    path = paths.as_path(cfg.output_dir) / "hf"
    sqjax.export_hf(nnx.merge(graphdef, state.params), path, tokenizer=tokenizer)
    return str(path)
