"""`sqjax plan --write-overrides FILE`: the fixes a plan compiled, as a YAML overlay that
`--config RUN --config FILE` applies.

Per stage, the fixes of its programs (several models each) merge into one that serves them
all: the widest mesh (a wider tensor axis over a narrower one, FSDP over data parallelism),
the most accumulation steps, the smallest batch, full remat over any other. A stage with a
program that no variant fits goes into `skip_stages`, with a comment: run it on a larger
slice. What the given overlays already set stays (re-planning with the written file and
writing it again gives the same file).
"""

from __future__ import annotations

from typing import Any

import yaml

from sqjax import paths
from sqjax.pipeline.config import _set_path, merge
from sqjax.plan.api import PlanResult

GIB = 1024**3


def _mesh_rank(mesh: dict[str, int]) -> tuple[int, int]:
    return (mesh["tensor"], mesh["fsdp"] == -1)


def _merge_value(key: str, old: Any, new: Any) -> Any:
    if old is None:
        return new
    if key.startswith("stage_mesh."):
        return max(old, new, key=_mesh_rank)
    if key.endswith(".accum_steps"):
        return max(old, new)
    if key.endswith(".batch_size"):
        return min(old, new)
    if key.endswith(".remat"):
        return "full" if "full" in (old, new) else new
    return new


def stage_fixes(result: PlanResult) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """(stage -> merged config changes, stage -> the programs no variant fits)."""
    fixes: dict[str, dict[str, Any]] = {}
    unfit: dict[str, list[str]] = {}
    for p in result.programs:
        name = f"{p.job.kind} of {p.job.model}"
        if p.figures.fits:
            continue
        if p.fix_changes is None:
            unfit.setdefault(p.job.stage, []).append(name)
            continue
        merged = fixes.setdefault(p.job.stage, {})
        for key, value in p.fix_changes.items():
            merged[key] = _merge_value(key, merged.get(key), value)
    return fixes, unfit


def overlay(result: PlanResult, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the overlay's settings, its comment lines): `given` (the overlays the plan ran
    with) with this plan's fixes merged over it."""
    fixes, unfit = stage_fixes(result)
    data = dict(given)
    notes = []
    for stage, changes in fixes.items():
        for key, value in changes.items():
            data = _set_path(data, key, value, "--write-overrides")
        programs = [p for p in result.programs if p.job.stage == stage and p.fix_changes]
        for p in programs:
            need = p.figures.total_bytes / GIB
            notes.append(
                f"{stage}: {p.job.kind} of {p.job.model} needs {need:.2f} GiB/device; "
                f"{p.fix} fits at {p.fix_figures.total_bytes / GIB:.2f} GiB"
            )
    if unfit:
        skip = list(dict.fromkeys([*data.get("skip_stages", []), *unfit]))
        data = merge(data, {"skip_stages": skip})
        for stage, programs in unfit.items():
            notes.append(
                f"{stage}: no variant plan compiled fits {result.topology.name} "
                f"({', '.join(programs)}); skipped here: run it on a larger slice"
            )
    return data, notes


def write_overrides(path: str, result: PlanResult, given: dict[str, Any]) -> int:
    """Writes the overlay (atomically); returns the number of settings it holds."""
    data, notes = overlay(result, given)
    v = result.versions
    head = (
        f"# sqjax plan --write-overrides for {result.topology.name} ({v.get('date', '')}, "
        f"jax {v.get('jax', '')}, libtpu {v.get('libtpu', '')}): apply with --config RUN "
        "--config THIS"
    )
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None) if data else "{}\n"
    text = "\n".join([head, *(f"# {n}" for n in notes), body])
    paths.write_text(path, text)
    return _count(data)


def _count(data: dict[str, Any]) -> int:
    """Settings in an overlay: each stage_mesh entry, each leaf elsewhere."""
    n = 0
    for key, value in data.items():
        if key == "stage_mesh":
            n += len(value)
        elif isinstance(value, dict):
            n += _count(value)
        else:
            n += 1
    return n
