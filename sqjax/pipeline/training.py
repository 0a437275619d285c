"""How a stage trains a model (`train_stage`) and publishes the result as `<stage>:<model>`.

The trainer writes checkpoints under RUN/<stage>/train/<model>/ (so a killed run resumes
from its last checkpoint) and exports an HF directory there; the stage then moves that
directory to RUN/<stage>/artifacts/<model>, where `<stage>:<model>` resolves. A model whose
artifact exists is not trained again.

The training summary (steps, final loss, the stage's extras) is saved as
RUN/<stage>/train/<model>/summary.json before the export is published, and put back into the
manifest when a rerun finds the model published, so a kill at any moment keeps it. A resumed
trainer whose last checkpoint was already committed runs no step and reports a NaN loss; the
summary then takes the last loss the trainer logged (metrics.jsonl, which it keeps in step with
its checkpoints).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from sqjax import paths
from sqjax.data.jsonl import atomic_write_json, atomic_write_jsonl, load_jsonl
from sqjax.errors import SqjaxError
from sqjax.paths import AnyPath
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.models import load_for_training, mesh_sizes
from sqjax.pipeline.names import confined


def artifact_dir(ctx: StageContext, model: str) -> AnyPath:
    return ctx.artifacts_dir / model


SUMMARY = "summary.json"


def summary_path(ctx: StageContext, model: str) -> Any:
    return confined(ctx.stage_dir / "train" / model / SUMMARY, ctx.stage_dir)


def last_logged_loss(metrics_path: str) -> float | None:
    """The loss of the last step the trainer logged in its metrics.jsonl; None if none."""
    try:
        rows = load_jsonl(metrics_path)
    except SqjaxError:
        return None
    losses = [r["loss"] for r in rows if isinstance(r.get("loss"), (int, float))]
    finite = [float(x) for x in losses if math.isfinite(x)]
    return finite[-1] if finite else None


def restore_summary(ctx: StageContext, model: str) -> dict | None:
    """Puts the summary saved when `<stage>:<model>` was published back into the manifest
    (a kill after publishing and before the manifest was saved lost it); returns it."""
    path = summary_path(ctx, model)
    if not path.is_file():
        ctx.log.warning("%s: no training summary (published by an older version)", path)
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    ctx.set_metric(f"train/{model}", summary)
    return summary


def is_published(ctx: StageContext, model: str) -> bool:
    """True when `<stage>:<model>` already has a complete HF directory."""
    return (artifact_dir(ctx, model) / "config.json").is_file()


def write_data(ctx: StageContext, model: str, rows: list[dict]) -> str:
    """The training rows as RUN/<stage>/train/<model>/data.jsonl; returns its path."""
    path = confined(ctx.stage_dir / "train" / model / "data.jsonl", ctx.stage_dir)
    atomic_write_jsonl(path, rows)
    return str(path)


def train_and_publish(ctx: StageContext, model: str, cfg: Any, extra: dict | None = None) -> dict:
    """Runs `sqjax.training.api.train(cfg)` and moves its HF export to the artifact dir;
    returns the summary (steps, final loss, `extra`), also saved and set as the manifest's
    `train/<model>` metric."""
    from sqjax.pipeline.models import forget
    from sqjax.training.api import train

    target = confined(artifact_dir(ctx, model), ctx.stage_dir)  # replaced below
    forget()  # free sampling copies before the trainer loads its own
    result = train(cfg)
    loss = result.final_loss
    loss = loss if math.isfinite(loss) else last_logged_loss(result.metrics_path)
    summary = {"steps": result.steps, "final_loss": loss, **(extra or {})}
    if ctx.process_index == 0:  # the one writer of a multi-process run
        atomic_write_json(summary_path(ctx, model), summary)  # before publishing: see above
        paths.makedirs(target.parent)
        paths.remove_tree(target)  # a move cut short (gs://: copies without config.json)
        paths.move_tree(result.hf_dir, target)
        ctx.sync.announce(f"published/{model}")
    else:
        ctx.sync.wait_for(f"published/{model}", f"process 0 to write {target}")
    forget()  # a cached `<stage>:<model>` from an earlier attempt is stale now
    ctx.log.info("wrote %s (%d steps, final loss %s)", target, result.steps, loss)
    ctx.set_metric(f"train/{model}", summary)
    return summary


STEP_SETTINGS = ("batch_size", "accum_steps", "remat", "epochs", "max_steps")


def section_recipe(section: Any, **fields: Any) -> dict[str, Any]:
    """A recipe from a training stage's settings: the step settings every such stage names
    alike (STEP_SETTINGS), then `fields`, which take precedence."""
    return {**{k: getattr(section, k) for k in STEP_SETTINGS}, **fields}


def train_config(
    ctx: StageContext,
    name: str,
    data: str,
    model: Any,
    tokenizer: Any,
    compute: str | None,
    recipe: Mapping[str, Any],
) -> Any:
    """The TrainConfig of `<stage>:<name>`: the recipe, with accum_steps lowered to a count
    that splits batch_size (micro_batches), plus what the run fixes (output under
    RUN/<stage>/train/<name>/, the run seed and mesh)."""
    from sqjax.training.config import TrainConfig, micro_batches

    recipe = dict(recipe)
    recipe["accum_steps"] = micro_batches(recipe["batch_size"], recipe.get("accum_steps", 1))
    return TrainConfig(
        model=model,
        tokenizer=tokenizer,
        data=(data,),
        output_dir=str(ctx.stage_dir / "train" / name),
        compute_dtype=compute,
        seed=ctx.config.seed,
        mesh=mesh_sizes(ctx),
        progress_bar=False,
        **ctx.config.attention.settings(),
        **recipe,
    )


def train_stage(
    ctx: StageContext,
    model_ref: str,
    rows: list[dict],
    recipe: Mapping[str, Any],
    *,
    name: str | None = None,
    adapt_tokenizer: Callable[[Any], Any] | None = None,
    extra: dict | None = None,
) -> dict | None:
    """Trains `model_ref` (a `models` name or `<stage>:<name>`) on `rows` as `recipe` says
    and publishes the result as `<this stage>:<name>` (default: the ref's model name);
    returns the training summary. The one way a stage trains: qft, qpo, sft and the
    difficulty regressor differ only by their recipe.

    recipe: sqjax.training.config.TrainConfig fields (loss, data_format, seq_len, batch_size,
      accum_steps, epochs, optim, ...); accum_steps is lowered to a count that splits
      batch_size (micro_batches). The rest comes from the run: the weights, tokenizer
      (`adapt_tokenizer` may change it, e.g. give it a chat template), compute dtype, seed
      and mesh.
    A published model is not trained again: its saved summary goes back into the manifest.
    """
    name = name or model_ref.rpartition(":")[2]
    if is_published(ctx, name):
        ctx.log.info("%s:%s already written; not training again", ctx.name, name)
        return restore_summary(ctx, name)
    data = write_data(ctx, name, rows)
    path, tokenizer, compute = load_for_training(ctx, model_ref)
    tokenizer = adapt_tokenizer(tokenizer) if adapt_tokenizer else tokenizer
    cfg = train_config(ctx, name, data, path, tokenizer, compute, recipe)
    return train_and_publish(ctx, name, cfg, extra)
