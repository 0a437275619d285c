"""What every model-using stage needs: its mesh, a model + tokenizer per config entry."""

from __future__ import annotations

import functools
from typing import Any

from sqjax.pipeline.context import StageContext


@functools.cache
def _load(path: str, dtype: str, param_dtype: str | None, mesh_sizes: tuple[int, int, int]):
    import jax

    from sqjax.checkpoints.api import load_model, load_tokenizer
    from sqjax.sharding import make_mesh

    # Sampling and scoring stages give each process its own shards, so each process runs its
    # own copy of the model on its local devices; no cross-host traffic per token.
    mesh = make_mesh(*mesh_sizes, devices=jax.local_devices())
    model = load_model(path, dtype=dtype, param_dtype=param_dtype, mesh=mesh)
    return model, load_tokenizer(path), mesh


def mesh_sizes(ctx: StageContext) -> tuple[int, int, int]:
    m = ctx.config.mesh
    return (m.data, m.fsdp, m.tensor)


def load_entry(ctx: StageContext, name: str, *, param_dtype: str | None = None) -> tuple[Any, Any, Any]:
    """(model, tokenizer, mesh) for a `models` table name or `<stage>:<name>` checkpoint, on
    a mesh over this process's devices (for sampling and scoring; training stages use the
    global mesh through sqjax.training).

    Loaded once per process and reused by later stages of the same run (`sqjax run`).
    """
    entry = ctx.model_entry(name)
    return _load(str(entry.path), entry.dtype, param_dtype, mesh_sizes(ctx))


def forget_models() -> None:
    """Drops cached models (after a training stage rewrote a checkpoint, or to free memory)."""
    _load.cache_clear()
