"""One `LLM` handle per model and process, shared by every stage of a run that uses it.

Sampling and scoring stages give each process its own shards, so each process runs its own
copy of a model on a mesh over its local devices (no cross-host traffic per token); training
stages use the global mesh through sqjax.training. Compiled programs are shared by every
handle of an architecture, so stages compile each (program, shape) once per run.

On TPU and GPU (devices with a memory limit) a stage that loads a model first drops the
handles that earlier stages used and it has not: `sqjax plan` sizes each stage for its own
models (a v5e chip holds one 7B model's shard and its cache, not the five models of a paper
run), so a dropped model is read again when a later stage needs it. On CPU, host memory,
the handles stay for the whole run.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from sqjax.pipeline.config import stage_mesh
from sqjax.pipeline.context import StageContext

if TYPE_CHECKING:  # imported when a handle is made: declaring stages does not load JAX
    from sqjax.sampling.llm import LLM


@functools.cache
def _tokenizer(path: str) -> Any:
    from sqjax.checkpoints.api import load_tokenizer

    return load_tokenizer(path)


_HANDLES: dict[tuple, LLM] = {}  # (path, dtype, param_dtype, mesh, attention) -> handle
_LAST_STAGE: dict[tuple, str] = {}  # the stage that last asked for each handle


def _handle(key: tuple, stage: str) -> LLM:
    llm = _HANDLES.get(key)
    if llm is None:
        import jax

        from sqjax.sampling.llm import LLM
        from sqjax.sharding import make_mesh

        if _memory_limited():
            for old in [k for k, by in _LAST_STAGE.items() if by != stage]:
                del _HANDLES[old], _LAST_STAGE[old]
        path, dtype, param_dtype, mesh, (kernel, block) = key
        devices = make_mesh(*mesh, devices=jax.local_devices())
        llm = LLM(
            path,
            _tokenizer(path),
            mesh=devices,
            dtype=dtype,
            param_dtype=param_dtype,
            attention=kernel,
            attention_block=block,
        )
        _HANDLES[key] = llm
    _LAST_STAGE[key] = stage
    return llm


def _memory_limited() -> bool:
    """True on devices that report a memory limit (TPU, GPU); CPU reports none."""
    import jax

    return jax.local_devices()[0].memory_stats() is not None


def mesh_sizes(ctx: StageContext) -> tuple[int, int, int]:
    """The stage's mesh: its `stage_mesh` entry, else the run's `mesh`."""
    return stage_mesh(ctx.config, ctx.name)


def llm_for(ctx: StageContext, ref: str, *, param_dtype: str | None = None) -> LLM:
    """The handle of a `models` table name or `<stage>:<name>` checkpoint on this process's
    devices, loaded once per process and reused by later stages of the same run."""
    entry = ctx.model_entry(ref)
    a = ctx.config.attention
    key = (str(entry.path), entry.dtype, param_dtype, mesh_sizes(ctx), (a.kernel, a.block))
    return _handle(key, ctx.name)


def tokenizer_for(ctx: StageContext, ref: str) -> Any:
    """The tokenizer of a `models` table name or `<stage>:<name>` checkpoint, read once per
    process (a GGUF tokenizer takes tens of seconds)."""
    return _tokenizer(str(ctx.model_entry(ref).path))


def load_for_training(ctx: StageContext, ref: str) -> tuple[str, Any, str | None]:
    """(model path, tokenizer, compute dtype or None for float32) for a training stage: the
    trainer reads the weights itself, each tensor straight into its mesh and sharding as
    float32 master weights (never a whole float32 copy on one device or host)."""
    entry = ctx.model_entry(ref)
    compute = None if entry.dtype == "float32" else entry.dtype
    return str(entry.path), tokenizer_for(ctx, ref), compute


def forget() -> None:
    """Drops the cached handles (after a training stage rewrote a checkpoint, or to free
    device memory for a trainer)."""
    _HANDLES.clear()
    _LAST_STAGE.clear()
