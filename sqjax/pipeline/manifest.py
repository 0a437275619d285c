"""`RUN/<stage>/manifest.json`: what a stage was run with, what it made, and what it cost.

The fingerprint (config hash + upstream output hashes) decides whether existing output may be
resumed or reused; everything else is accounting for the report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from sqjax.data.jsonl import atomic_write_json
from sqjax.errors import SqjaxError
from sqjax.paths import AnyPath
from sqjax.pipeline.config import RunSettings, get_key, model_refs
from sqjax.pipeline.stage import Registry, Stage

MANIFEST = "manifest.json"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def stage_config(cfg: RunSettings, spec: Stage) -> dict:
    """The part of the config a stage's output depends on: its section, the run seed, the
    models it names and its declared config_deps. Not run_dir or mesh."""
    section = getattr(cfg, spec.section_name)
    values = {key: get_key(cfg, key) for key in spec.config_deps}
    names = _model_names(section, cfg.models)
    for value in values.values():
        names |= _model_names(value, cfg.models)
    deps = {key: _plain(value) for key, value in values.items()}
    return {
        "seed": cfg.seed,
        spec.section_name: _plain(section),
        "models": {n: _plain(cfg.models[n]) for n in sorted(names) if n in cfg.models},
        **deps,
    }


def _model_names(value: Any, models: dict) -> set[str]:
    """Names of the `models` entries a setting names: its model fields when it is a config
    dataclass, else the value itself (a name or a list of names)."""
    if dataclasses.is_dataclass(value):
        return {ref.rpartition(":")[2] for _, ref in model_refs(value)}
    values = value if isinstance(value, list) else [value]
    return {v.rpartition(":")[2] for v in values if isinstance(v, str)} & set(models)


def config_hash(stage_cfg: dict) -> str:
    return hashlib.sha256(json.dumps(stage_cfg, sort_keys=True).encode()).hexdigest()[:16]


def input_stages(cfg: RunSettings, spec: Stage) -> list[str]:
    """Declared inputs plus stages whose checkpoints the stage's model fields name."""
    found = list(spec.inputs)
    for _, ref in model_refs(getattr(cfg, spec.section_name)):
        stage = ref.rpartition(":")[0]
        if stage and stage not in found:
            found.append(stage)
    return found


def read_manifest(stage_dir: AnyPath) -> dict | None:
    path = stage_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SqjaxError(
            f"{path}: corrupt manifest ({e}); rerun the stage with --restart"
        ) from None


def write_manifest(stage_dir: AnyPath, manifest: dict) -> None:
    atomic_write_json(stage_dir / MANIFEST, manifest)


def input_hashes(run_dir: AnyPath, stage: str, upstream: list[str]) -> dict[str, str]:
    """Output hash of each upstream stage; SqjaxError if one has not finished."""
    hashes = {}
    for name in upstream:
        m = read_manifest(run_dir / name)
        if m is None or not m.get("finished"):
            raise SqjaxError(
                f"stage {stage} needs the output of {name}, which has not finished in "
                f"{run_dir}; run `sqjax stage {name}` first"
            )
        hashes[name] = m["output_hash"]
    return hashes


def emptied_by(run_dir: Any, stage: str, registry: Registry) -> str | None:
    """None when `stage` wrote rows (or writes none by design: no output step); else which
    stage emptied the data, e.g. "filter kept 0 of 32 rows (drops: ...)", following empty
    inputs upstream to the stage that got rows and kept none."""
    m = read_manifest(run_dir / stage)
    if m is None or "" not in m.get("steps", {}) or m.get("rows_out", 0) > 0:
        return None
    if m.get("rows_in", 0) > 0:
        drops = m.get("drops") or "none"
        return f"{stage} kept 0 of {m['rows_in']} rows (drops: {drops})"
    for upstream in registry.get(stage).inputs if stage in registry else ():
        if (why := emptied_by(run_dir, upstream, registry)) is not None:
            return why
    return f"{stage} got no input rows"


def changed_keys(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        sub = [changed_keys(old.get(k), new.get(k), f"{path}.{k}" if path else k) for k in keys]
        return [k for keys_k in sub for k in keys_k]
    return [] if old == new else [path]
