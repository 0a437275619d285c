"""One `LLM` handle per model and process, shared by every stage of a run that uses it.

Sampling and scoring stages give each process its own shards, so each process runs its own
copy of a model on a mesh over its local devices (no cross-host traffic per token); training
stages use the global mesh through sqjax.training. A handle keeps its compiled programs, so
stages that share a model compile each (program, shape) once per run.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from sqjax.pipeline.context import StageContext

if TYPE_CHECKING:  # imported when a handle is made: declaring stages does not load JAX
    from sqjax.sampling.llm import LLM


@functools.cache
def _tokenizer(path: str) -> Any:
    from sqjax.checkpoints.api import load_tokenizer

    return load_tokenizer(path)


@functools.cache
def _handle(path: str, dtype: str, param_dtype: str | None, mesh: tuple[int, int, int]) -> LLM:
    import jax

    from sqjax.sampling.llm import LLM
    from sqjax.sharding import make_mesh

    devices = make_mesh(*mesh, devices=jax.local_devices())
    return LLM(path, _tokenizer(path), mesh=devices, dtype=dtype, param_dtype=param_dtype)


def mesh_sizes(ctx: StageContext) -> tuple[int, int, int]:
    m = ctx.config.mesh
    return (m.data, m.fsdp, m.tensor)


def llm_for(ctx: StageContext, ref: str, *, param_dtype: str | None = None) -> LLM:
    """The handle of a `models` table name or `<stage>:<name>` checkpoint on this process's
    devices, loaded once per process and reused by later stages of the same run."""
    entry = ctx.model_entry(ref)
    return _handle(str(entry.path), entry.dtype, param_dtype, mesh_sizes(ctx))


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
    _handle.cache_clear()
