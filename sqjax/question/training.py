"""Running the trainer for a stage and publishing its result as `<stage>:<model>`.

The trainer writes checkpoints under RUN/<stage>/train/<model>/ (so a killed run resumes
from its last checkpoint) and exports an HF directory there; the stage then moves that
directory to RUN/<stage>/artifacts/<model>, where `<stage>:<model>` resolves. A model whose
artifact exists is not trained again.
"""

from __future__ import annotations

from typing import Any

from sqjax import paths
from sqjax.data.jsonl import atomic_write_jsonl
from sqjax.paths import AnyPath
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.names import confined


def artifact_dir(ctx: StageContext, model: str) -> AnyPath:
    return ctx.artifacts_dir / model


def is_published(ctx: StageContext, model: str) -> bool:
    """True when `<stage>:<model>` already has a complete HF directory."""
    return (artifact_dir(ctx, model) / "config.json").is_file()


def load_for_training(ctx: StageContext, ref: str) -> tuple[Any, Any, str | None]:
    """(Decoder with float32 master weights, tokenizer, compute dtype or None for float32)."""
    from sqjax.checkpoints.api import load_model, load_tokenizer

    entry = ctx.model_entry(ref)
    model = load_model(entry.path, dtype="float32", param_dtype="float32")
    compute = None if entry.dtype == "float32" else entry.dtype
    return model, load_tokenizer(entry.path), compute


def write_data(ctx: StageContext, model: str, rows: list[dict]) -> str:
    """The training rows as RUN/<stage>/train/<model>/data.jsonl; returns its path."""
    path = confined(ctx.stage_dir / "train" / model / "data.jsonl", ctx.stage_dir)
    atomic_write_jsonl(path, rows)
    return str(path)


def train_and_publish(ctx: StageContext, model: str, cfg: Any) -> dict:
    """Runs `sqjax.training.api.train(cfg)` and moves its HF export to the artifact dir;
    returns a summary (steps, final loss) for the manifest."""
    from sqjax.stages.common import forget_models
    from sqjax.training.api import train

    target = confined(artifact_dir(ctx, model), ctx.stage_dir)  # replaced below
    forget_models()  # free sampling copies before the trainer loads its own
    result = train(cfg)
    if ctx.process_index == 0:  # the one writer of a multi-process run
        paths.makedirs(target.parent)
        paths.remove_tree(target)  # a move cut short (gs://: copies without config.json)
        paths.move_tree(result.hf_dir, target)
        ctx.sync.announce(f"published/{model}")
    else:
        ctx.sync.wait_for(f"published/{model}", f"process 0 to write {target}")
    forget_models()  # a cached `<stage>:<model>` from an earlier attempt is stale now
    ctx.log.info("wrote %s (%d steps, final loss %.4f)", target, result.steps, result.final_loss)
    return {"steps": result.steps, "final_loss": result.final_loss}


def mesh_tuple(ctx: StageContext) -> tuple[int, int, int]:
    m = ctx.config.mesh
    return (m.data, m.fsdp, m.tensor)
