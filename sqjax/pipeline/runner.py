"""Runs stages: fingerprint check, context set-up, manifest accounting, pipeline order."""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from sqjax import attention_log, compile_budget, paths
from sqjax.compile_budget import Compiles
from sqjax.errors import SqjaxError
from sqjax.pipeline import manifest as mf
from sqjax.pipeline import shards as sh
from sqjax.pipeline.config import RunSettings, StageView
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.rundir import prepare, step_dir
from sqjax.pipeline.stage import Registry, Stage
from sqjax.pipeline.sync import StageSync

log = logging.getLogger("sqjax")
SAVE_EVERY_S = 30.0  # seconds between progress updates of an unfinished manifest
FAILED_ROWS_LISTED = 100  # failed rows listed by id in a manifest (all are counted)


def topology() -> tuple[int, int]:
    """(process_index, process_count) from JAX when a stage has imported it, else (0, 1)."""
    if "jax" not in sys.modules:
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def devices() -> tuple[str, int]:
    """(device kind, device count) when JAX is in use, else ("none", 0)."""
    if "jax" not in sys.modules:
        return "none", 0
    import jax

    ds = jax.devices()
    return ds[0].device_kind, len(ds)


def run_stage(
    cfg: RunSettings,
    name: str,
    restart: bool = False,
    run_dir: str | Path | None = None,
    process: tuple[int, int] | None = None,
    stop_on_empty: bool = False,
) -> dict:
    """Runs (or resumes, or skips if finished) one stage; returns its manifest.

    An upstream stage whose rows this stage reads but which wrote none is a loud warning that
    names the stage that emptied the data, or, with `stop_on_empty` (`sqjax run`), an error
    before any work."""
    spec = cfg.stages.get(name)
    run_dir = paths.as_path(run_dir or cfg.run_dir)
    upstream = mf.input_stages(cfg, spec)
    stage_cfg = mf.stage_config(cfg, spec)
    chash = mf.config_hash(stage_cfg)
    inputs = mf.input_hashes(run_dir, name, upstream)
    _check_inputs_not_empty(run_dir, spec, cfg.stages, stop_on_empty)
    pi, pc = process or topology()
    if restart and pc > 1:
        raise SqjaxError("--restart with several processes: restart once on one process first")
    sync = StageSync.for_attempt(name, pi, pc)
    try:
        if pi == 0:
            old = prepare(run_dir / name, chash, stage_cfg, inputs, restart)
            sync.announce("prepared", old)
        else:
            old = sync.wait_for("prepared", f"process 0 to prepare {run_dir / name}")
        if old and old.get("finished"):
            log.info("stage %s already finished in %s; skipping", name, run_dir / name)
            return old
        manifest = _start_manifest(name, chash, stage_cfg, inputs, old)
        section = getattr(cfg, spec.section_name)
        view = StageView(cfg, spec)
        ctx = StageContext(name, view, section, run_dir, manifest, upstream, pi, pc, sync)
        result = _execute(ctx, spec.run)
        if pi == 0:
            sync.announce("finished")
        else:  # the next stage reads this one's finished manifest
            sync.wait_for("finished", f"process 0 to finish {name}")
        return result
    except BaseException as e:
        sync.fail(e)
        raise


def _check_inputs_not_empty(run_dir: Path, spec: Stage, registry: Registry, stop: bool) -> None:
    name = spec.name
    for upstream in spec.inputs:
        why = mf.emptied_by(run_dir, upstream, registry)
        if why is None:
            continue
        message = f"stage {name}: its input {upstream} has 0 rows ({why})"
        if stop:
            raise SqjaxError(
                f"{message}; stopping before {name}: loosen that stage's settings or feed it "
                f"more rows, then rerun (`sqjax stage {name}` runs it anyway)"
            )
        log.warning("!" * 8 + " %s; %s will produce nothing " + "!" * 8, message, name)


def _start_manifest(name: str, chash: str, stage_cfg: dict, inputs: dict, old: dict | None) -> dict:
    old = old or {}
    return {
        "stage": name,
        "finished": False,
        "config_hash": chash,
        "config": stage_cfg,
        "input_hashes": inputs,
        "steps": old.get("steps", {}),
        "attempts": old.get("attempts", 0) + 1,
        "wall_s_before": old.get("wall_s", 0.0),
        "compile_before": old.get("compile", Compiles().as_dict()),
        "attention_kernels": old.get("attention_kernels", {}),
        "started_at": old.get("started_at", time.strftime("%Y-%m-%dT%H:%M:%S")),
    }


def _execute(ctx: StageContext, run) -> dict:
    t0 = last = time.monotonic()
    compiles0, attention0 = compile_budget.totals(), attention_log.snapshot()

    def save(finished: bool = False, force: bool = False) -> None:
        """Progress saves are throttled: each one reads every shard's stats file."""
        nonlocal last
        now = time.monotonic()
        if ctx.process_index == 0 and (finished or force or now - last >= SAVE_EVERY_S):
            _account(ctx, now - t0, finished, compile_budget.totals() - compiles0)
            # which attention kernel each device program ran (earlier attempts' included)
            kernels = ctx.manifest.setdefault("attention_kernels", {})
            kernels.update(attention_log.since(attention0))
            mf.write_manifest(ctx.stage_dir, ctx.manifest)
            last = now

    ctx.save_manifest = save
    save(force=True)  # the manifest comes first: a directory with files but none is refused
    handler = paths.log_handler(ctx.stage_dir / log_name(ctx.process_index))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    ctx.log.addHandler(handler)
    try:
        ctx.log.info("stage %s: attempt %d", ctx.name, ctx.manifest["attempts"])
        run(ctx)
        ctx.sync.meet("ran", f"the other processes to finish {ctx.name}")
        save(finished=True)
        _warn_if_emptied(ctx)
    finally:
        ctx.log.removeHandler(handler)
        handler.close()
    return ctx.manifest


def _warn_if_emptied(ctx: StageContext) -> None:
    m = ctx.manifest
    if "" in m.get("steps", {}) and m.get("rows_out") == 0 and m.get("rows_in", 0) > 0:
        ctx.log.warning(
            "stage %s kept 0 of %d rows (drops: %s); later stages get no data",
            ctx.name,
            m["rows_in"],
            m.get("drops") or "none",
        )


def log_name(process_index: int) -> str:
    """log.txt for process 0, log.p<i>.txt for the others of a multi-process run."""
    return "log.txt" if process_index == 0 else f"log.p{process_index}.txt"


def _account(ctx: StageContext, attempt_s: float, finished: bool, compiles: Compiles) -> None:
    """Totals over every shard written so far (all attempts) plus this attempt's counters
    (its compilations included: programs, persistent-cache hits, seconds)."""
    m = ctx.manifest
    m["compile"] = (Compiles(**m["compile_before"]) + compiles).as_dict()
    drops, tokens, shard_s = Counter(ctx.drops), ctx.tokens, 0.0
    failed: list[dict] = []
    for step, meta in m.get("steps", {}).items():
        meta["rows_out"] = 0
        for shard in sh.list_shards(step_dir(ctx.stage_dir, step)).values():
            stats = sh.read_stats(shard)
            drops.update(stats.get("drops", {}))
            failed.extend(stats.get("failed", []))
            tokens += stats.get("tokens", 0)
            shard_s += stats.get("wall_s", 0.0)
            meta["rows_out"] += stats.get("rows_out", 0)
    kind, count = devices()
    wall_s = m["wall_s_before"] + attempt_s
    first_step = next(iter(m.get("steps", {}).values()), {})
    m.update(
        rows_in=ctx.rows_read or first_step.get("rows_in", 0),
        drops=dict(sorted(drops.items())),
        failed_rows={"count": len(failed), "first": failed[:FAILED_ROWS_LISTED]},
        tokens=tokens,
        shard_wall_s=shard_s,
        wall_s=wall_s,
        device_kind=kind,
        device_count=count,
        device_hours=wall_s * count / 3600,
        process_count=ctx.process_count,
    )
    if finished:
        out = sh.output_hash(ctx.stage_dir)
        key = f"{m['config_hash']}/{sorted(m['input_hashes'].items())}/{out}"
        m.update(
            finished=True,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            rows_out=m["steps"].get("", {}).get("rows_out", 0),
            output_hash=hashlib.sha256(key.encode()).hexdigest()[:16],
        )


def pipeline_stages(
    cfg: RunSettings, first: str | None = None, last: str | None = None
) -> list[str]:
    """The config's stages from `first` to `last` (inclusive), minus cfg.skip_stages."""
    order = cfg.stages.names()
    lo = order.index(cfg.stages.get(first).name) if first else 0
    hi = order.index(cfg.stages.get(last).name) if last else len(order) - 1
    if lo > hi:
        raise SqjaxError(f"--from {first} comes after --to {last} in the pipeline order")
    return [s for s in order[lo : hi + 1] if s not in cfg.skip_stages]


def run_pipeline(
    cfg: RunSettings,
    first: str | None = None,
    last: str | None = None,
    run_dir: str | Path | None = None,
) -> list[dict]:
    """Runs the stages in order, skipping finished ones; returns their manifests."""
    return [
        run_stage(cfg, name, run_dir=run_dir, stop_on_empty=True)
        for name in pipeline_stages(cfg, first, last)
    ]
