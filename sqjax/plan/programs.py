"""The device programs each stage runs, lowered for a mesh with abstract inputs: nothing is
allocated and no weights are read. Each builder goes through the functions the stages use
(sqjax/training/step.py's train step, sqjax/training/dpo.py's reference log-probs, the
engine's jitted insert/decode from sqjax/sampling/steps.py, sqjax/sampling/scoring.py, the
difficulty regressor's step), so the figures follow the code."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sqjax.models.config import ModelConfig
from sqjax.plan.abstract import abstract_model
from sqjax.sharding import SAMPLE_RULES, TRAIN_RULES, batch_sharding, on_mesh, state_shardings

SFT_KEYS = {
    "tokens": jnp.int32,
    "positions": jnp.int32,
    "segment_ids": jnp.int32,
    "targets": jnp.int32,
    "weights": jnp.float32,
}
REGRESSION_KEYS = {
    "tokens": jnp.int32,
    "segment_ids": jnp.int32,
    "labels": jnp.float32,
    "weights": jnp.float32,
}
TOTAL_STEPS = 1_000  # the schedule's length does not change the program


@dataclasses.dataclass(frozen=True)
class TrainShape:
    """A training stage's step: `rows` per optimizer step in `accum` micro-batches."""

    loss: str  # "sft", "dpo" or "regression" (the difficulty regressor)
    rows: int
    seq_len: int
    accum: int = 1
    remat: str = "none"
    logits_chunk: int = 1024
    compute_dtype: str = "bfloat16"


def _sds(shape, dtype, sharding) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), jnp.dtype(dtype), sharding=sharding)


def _with(tree: Any, shardings: Any) -> Any:
    """Abstract arrays of `tree` carrying the matching shardings of `shardings`."""
    return jax.tree.map(lambda a, s: _sds(a.shape, a.dtype, s), tree, shardings)


def _replicated(mesh: Mesh, shape, dtype) -> jax.ShapeDtypeStruct:
    return _sds(shape, dtype, NamedSharding(mesh, PartitionSpec()))


def train_step(cfg: ModelConfig, mesh: Mesh, t: TrainShape):
    """The stage trainer's jitted step (sqjax.training.step.make_train_step), lowered."""
    from sqjax.training.config import DPOConfig, OptimConfig
    from sqjax.training.dpo import dpo_objective
    from sqjax.training.optimizer import make_optimizer, schedule
    from sqjax.training.regression import regression_objective
    from sqjax.training.sft import sft_objective
    from sqjax.training.step import TrainState, batch_spec, make_train_step, state_sharding

    model = abstract_model(cfg, t.compute_dtype, "float32")
    graphdef, params = nnx.split(model, nnx.Param)
    optim = OptimConfig()
    optimizer = make_optimizer(optim, TOTAL_STEPS)
    sharding = state_sharding(params, optimizer, mesh)
    abstract = jax.eval_shape(
        lambda p: TrainState(jnp.zeros((), jnp.int32), p, optimizer.init(p)), params
    )
    A, b, L = t.accum, t.rows // t.accum, t.seq_len
    if t.loss == "dpo":
        d = DPOConfig()
        objective = dpo_objective(d.variant, d.beta, remat=t.remat, logits_chunk=t.logits_chunk)
        dtypes = {f"{side}_{k}": v for side in ("chosen", "rejected") for k, v in SFT_KEYS.items()}
        shapes = {k: (A, b, L) for k in dtypes}
        dtypes |= {"ref_chosen": jnp.float32, "ref_rejected": jnp.float32}
        shapes |= {"ref_chosen": (A, b), "ref_rejected": (A, b)}
    elif t.loss == "regression":
        objective = regression_objective(t.remat)
        dtypes = REGRESSION_KEYS
        shapes = {k: (A, b, L) if k in ("tokens", "segment_ids") else (A, b) for k in dtypes}
    else:
        objective = sft_objective(t.remat, t.logits_chunk)
        dtypes, shapes = SFT_KEYS, {k: (A, b, L) for k in SFT_KEYS}
    step = make_train_step(
        graphdef, objective, optimizer, schedule(optim, TOTAL_STEPS), sharding, shapes, mesh
    )
    batch = {k: _sds(shapes[k], dtypes[k], batch_spec(mesh, len(shapes[k]))) for k in shapes}
    return step.lower(_with(abstract, sharding), batch)


def reference_pass(cfg: ModelConfig, mesh: Mesh, t: TrainShape):
    """DPO's frozen reference log-probabilities (sqjax.training.dpo._both_logps) over one
    micro-batch of pairs, on the trainer's weights (float32 master, TRAIN_RULES)."""
    from sqjax.training.dpo import ROW_KEYS, _both_logps

    model = abstract_model(cfg, t.compute_dtype, "float32")
    graphdef, weights = nnx.split(model)
    w_s = state_shardings(weights, mesh, TRAIN_RULES)
    b = t.rows // t.accum
    batch = {
        f"{side}_{k}": _sds((b, t.seq_len), SFT_KEYS[k], batch_sharding(mesh, 2))
        for side in ("chosen", "rejected")
        for k in ROW_KEYS
    }
    fn = jax.jit(lambda w, batch: _both_logps(nnx.merge(graphdef, w), batch))
    with on_mesh(mesh):  # as sqjax.training.dpo.reference_logprobs traces it
        return fn.lower(_with(weights, w_s), batch)


def regressor_step(cfg: ModelConfig, mesh: Mesh, t: TrainShape):
    """The difficulty regressor's train step: the trainer's step with the regression loss
    (sqjax.training.regression) on the model with a score head."""
    return train_step(cfg.replace(head="score", num_labels=1), mesh, t)


@dataclasses.dataclass(frozen=True)
class SampleShape:
    """A sampling stage's engine: `slots` rows, a cache of `cache_len`, prompts of up to
    `prompt_len` tokens of which `unique` distinct per insert, `chunk` decode steps a call."""

    slots: int
    cache_len: int
    prompt_len: int
    unique: int
    chunk: int = 16
    stop_ids: int = 4
    dtype: str = "bfloat16"
    layout: str = "stacked"  # what sqjax.LLM runs on a TPU (bench/tpu_layout.py: why)


class _AbstractLLM:
    """What an Engine takes of a sqjax.LLM handle, over abstract weights: an LLM would place
    its weights on the mesh; here they stay ShapeDtypeStructs with their shardings."""

    def __init__(self, cfg: ModelConfig, mesh: Mesh, dtype: str, chunk: int, layout: str):
        from flax.nnx import split

        from sqjax.models.decoder import abstract_layers

        model = abstract_model(cfg, dtype, dtype)
        if layout == "layers":
            model.blocks = abstract_layers(model.config)
        self.graphdef, weights = split(model)
        self.weights = _with(weights, state_shardings(weights, mesh, SAMPLE_RULES))
        self.config, self.dtype, self.mesh = model.config, model.compute_dtype, mesh
        self.tokenizer, self.chunk, self.layout = None, chunk, layout

    @staticmethod
    def sampler_programs(shard) -> tuple:
        from sqjax.sampling.engine import jit_programs

        return jit_programs(shard)


def _engine(cfg: ModelConfig, mesh: Mesh, s: SampleShape):
    """An Engine on an abstract model: the engine's own slot layout, shardings and jitted
    programs."""
    from sqjax.sampling.engine import Engine

    llm = _AbstractLLM(cfg, mesh, s.dtype, s.chunk, s.layout)
    engine = Engine(llm, max_batch=s.slots, chunk=s.chunk)
    slots = jax.eval_shape(lambda: engine._init_slots(engine.max_batch, s.cache_len, s.stop_ids))
    slots = _with(slots, engine._slot_shardings(slots))
    return engine, slots


def decode(cfg: ModelConfig, mesh: Mesh, s: SampleShape, span: int):
    """One decode call (`chunk` steps) attending the first `span` cache slots."""
    engine, slots = _engine(cfg, mesh, s)
    decode_fn = engine._programs(slots)[0]
    kill_B = _replicated(mesh, (engine.max_batch,), jnp.bool_)
    return decode_fn.lower(
        engine.graphdef,
        engine.weights,
        slots,
        kill_B,
        steps=s.chunk,
        span=span,
        with_logprobs=False,
    )


def insert(cfg: ModelConfig, mesh: Mesh, s: SampleShape):
    """One insert: `unique` prompts prefilled and copied into all slots."""
    from sqjax.sampling.engine import bucket
    from sqjax.sampling.filters import RowSampling
    from sqjax.sampling.steps import NewRows

    engine, slots = _engine(cfg, mesh, s)
    insert_fn = engine._programs(slots)[1]
    U, B, L = s.unique, engine.max_batch, bucket(s.prompt_len - 1)

    def rep(shape, dtype):
        return _replicated(mesh, shape, dtype)

    i32, f32, u32 = np.int32, np.float32, np.uint32
    new = NewRows(
        src_M=rep((B,), i32),
        slot_M=rep((B,), i32),
        rows=RowSampling(rep((B,), f32), rep((B,), i32), rep((B,), f32), rep((B,), f32)),
        min_tokens_M=rep((B,), i32),
        max_tokens_M=rep((B,), i32),
        stop_ME=rep((B, s.stop_ids), i32),
        seed_M=rep((B,), u32),
        request_M=rep((B,), u32),
        index_M=rep((B,), u32),
    )
    # the engine splits the distinct prompts over the data rows
    rows = [_sds(shape, i32, batch_sharding(mesh, len(shape))) for shape in ((U, L), (U,), (U,))]
    return insert_fn.lower(engine.graphdef, engine.weights, slots, *rows, new)


def score(cfg: ModelConfig, mesh: Mesh, rows: int, seq_len: int, kind: str, dtype: str):
    """A scoring program of sqjax.sampling.scoring (`rewards`, `logprobs`) or the difficulty
    scorer's prediction, over one padded batch."""
    from sqjax.sampling import scoring

    model = abstract_model(cfg, dtype, dtype)
    graphdef, weights = nnx.split(model)
    weights = _with(weights, state_shardings(weights, mesh, SAMPLE_RULES))
    ids = _sds((rows, seq_len), jnp.int32, batch_sharding(mesh, 2))
    fn = {
        "reward": scoring.rewards,
        "logprobs": scoring.token_logprobs,
        "next": scoring.next_token_logprobs,  # yes_probability: an LM judge's verdict
    }[kind]
    with on_mesh(mesh):  # as scoring.Batcher calls it
        return fn.lower(graphdef, weights, ids, ids)


def weight_bytes_per_device(
    cfg: ModelConfig, mesh: Mesh, dtype: str, *, read_per_step: bool = False
) -> float:
    """Bytes of the sampler's weights (SAMPLE_RULES) one device holds; with read_per_step,
    those a decode step reads: all but the input embedding table when the LM head is a
    matrix of its own (a step gathers only its rows' embeddings from the table)."""
    model = abstract_model(cfg, dtype, dtype)
    weights = nnx.state(model)
    shardings = state_shardings(weights, mesh, SAMPLE_RULES)

    def one(a, s):
        return float(np.prod(s.shard_shape(a.shape))) * jnp.dtype(a.dtype).itemsize

    held = sum(jax.tree.leaves(jax.tree.map(one, weights, shardings)))
    if not read_per_step or cfg.tie_word_embeddings:
        return held
    return held - one(weights["embed"], shardings["embed"])


def _sharded_bytes(tree: Any) -> float:
    """Bytes one device holds of a tree of abstract arrays with shardings."""

    def one(a):
        return float(np.prod(a.sharding.shard_shape(a.shape))) * jnp.dtype(a.dtype).itemsize

    return sum(one(a) for a in jax.tree.leaves(tree))


def argument_bytes(kind: str, cfg: ModelConfig, mesh: Mesh, shape: Any, dtype: str) -> float:
    """A lower bound of a program's memory per device, without compiling it: the train state
    (float32 weights and Adam moments) or the sampler's weights and slots it takes as
    arguments (0 for the other programs)."""
    if kind in ("reference", "score"):
        rules, param_dtype = (
            (TRAIN_RULES, "float32") if kind == "reference" else (SAMPLE_RULES, dtype)
        )
        weights = nnx.state(abstract_model(cfg, dtype, param_dtype))
        return _sharded_bytes(_with(weights, state_shardings(weights, mesh, rules)))
    if kind in ("train", "regressor"):
        from sqjax.training.config import OptimConfig
        from sqjax.training.optimizer import make_optimizer
        from sqjax.training.step import TrainState, state_sharding

        params = nnx.state(abstract_model(cfg, dtype, "float32"), nnx.Param)
        optimizer = make_optimizer(OptimConfig(), TOTAL_STEPS)
        abstract = jax.eval_shape(
            lambda p: TrainState(jnp.zeros((), jnp.int32), p, optimizer.init(p)), params
        )
        return _sharded_bytes(_with(abstract, state_sharding(params, optimizer, mesh)))
    if kind in ("insert", "decode"):
        engine, slots = _engine(cfg, mesh, shape)
        return _sharded_bytes(engine.weights) + _sharded_bytes(slots)
    return 0.0
