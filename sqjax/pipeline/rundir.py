"""Run directory layout and the rules for reusing a stage's existing output.

RUN/<stage>/            final output shards, manifest.json, log.txt (log.p<i>.txt: process i)
RUN/<stage>/steps/<s>/  shards of intermediate steps (`ctx.map_shards(..., step=s)`)
RUN/<stage>/artifacts/  checkpoints and other files a stage writes (`ctx.artifacts_dir`)
RUN/<stage>.old-<time>/ output moved aside by --restart (never deleted)

RUN is a local directory or a gs:// prefix (sqjax.paths); on a multi-host slice it must be
the bucket, which every host reads and writes.
"""

from __future__ import annotations

import logging
import time

from sqjax import paths
from sqjax.errors import SqjaxError
from sqjax.paths import AnyPath
from sqjax.pipeline.manifest import changed_keys, read_manifest


def stage_dir(run_dir: AnyPath, stage: str) -> AnyPath:
    return run_dir / stage


def step_dir(stage_path: AnyPath, step: str) -> AnyPath:
    return stage_path / "steps" / step if step else stage_path


def move_aside(path: AnyPath) -> AnyPath:
    """Renames `path` to `<path>.old-<YYYYmmdd-HHMMSS>[-k]` and returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.old-{stamp}")
    k = 1
    while target.exists():
        target = path.with_name(f"{path.name}.old-{stamp}-{k}")
        k += 1
    paths.move_tree(path, target)
    return target


def prepare(
    path: AnyPath, config_hash: str, stage_cfg: dict, inputs: dict[str, str], restart: bool
) -> dict | None:
    """Checks that existing output in `path` may be resumed; returns its manifest or None
    (a new stage, whose directory it creates, so other processes may log into it).

    Output made with another config or other upstream output is never mixed with new output:
    SqjaxError unless `restart`, which moves the old directory aside first.
    """
    stage = path.name
    if restart and path.exists():
        moved = move_aside(path)
        logging.getLogger("sqjax").warning("moved the old output of %s to %s", stage, moved)
    manifest = read_manifest(path)
    if manifest is None:
        if paths.has_entries(path):
            raise SqjaxError(
                f"{path} holds files but no manifest.json; rerun with --restart to move them aside"
            )
        paths.makedirs(path)
        return None
    if manifest.get("config_hash") != config_hash:
        keys = changed_keys(manifest.get("config", {}), stage_cfg) or ["(unknown)"]
        raise SqjaxError(
            f"{path} has output made with a different config (changed: {', '.join(keys)}); "
            f"refusing to mix them: restore the old settings, or rerun with --restart to move "
            f"the old output aside"
        )
    if manifest.get("input_hashes") != inputs:
        changed = sorted(
            k
            for k in set(inputs) | set(manifest.get("input_hashes", {}))
            if inputs.get(k) != manifest.get("input_hashes", {}).get(k)
        )
        raise SqjaxError(
            f"{path} was made from other output of {', '.join(changed)} (rerun since); "
            f"rerun {stage} with --restart to move its old output aside"
        )
    return manifest
