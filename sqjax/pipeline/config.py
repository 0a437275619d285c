"""Run configs: YAML -> a frozen run-config dataclass, with `--set key=value` overrides.

The dataclass is built from a stage registry (`config_type`: the run-wide RunSettings plus one
field per stage holding that stage's settings class); sqjax.registry builds the shipped one,
`RunConfig`. A stage reads the config through a `StageView`.

Unknown keys, wrong types and model names missing from the `models` table are SqjaxErrors
naming the key path, the file (or `--set` option) and the expected type. Names that become
directory names (models, benchmarks) must be plain identifiers (sqjax.pipeline.names).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from sqjax import assets
from sqjax.data.jsonl import not_utf8
from sqjax.errors import SqjaxError
from sqjax.pipeline.checks import as_component
from sqjax.pipeline.names import check_name
from sqjax.pipeline.stage import Registry, Stage
from sqjax.pipeline.typed import build

MODEL_REF = "model_ref"
MODEL = {MODEL_REF: True}  # field metadata of a stage setting: the value names models
DIR_NAMES = {"dir_names": True}  # field metadata: the mapping's keys become directory names


@dataclass(frozen=True)
class ModelEntry:
    """A model: HF checkpoint dir, hub id, `.gguf` file, or `asset:PKG/PATH`."""

    path: str
    dtype: Literal["bfloat16", "float32", "float16"] = "bfloat16"

    @property
    def is_gguf(self) -> bool:
        return self.path.endswith(".gguf")


@dataclass(frozen=True)
class MeshConfig:
    """Device mesh axis sizes; -1 = all remaining devices. Not part of any stage's
    fingerprint: a preempted run may resume on a different slice."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1

    def __post_init__(self) -> None:
        from sqjax.sharding import check_mesh_sizes

        as_component(check_mesh_sizes, (self.data, self.fsdp, self.tensor))


@dataclass(frozen=True)
class AttentionConfig:
    """The self-attention kernel of every model the run loads (sqjax.models.kernels: auto =
    splash on TPU, the best working one on GPU, XLA on CPU) and its block size. Not part of
    any fingerprint: kernels compute the same attention. Checked when a config is loaded
    (`problems`), so that the error names `attention.kernel` or `attention.block`."""

    kernel: str = "auto"
    block: int = 512

    def problems(self) -> list[tuple[str, str]]:
        """(key, message) for each setting that is not valid."""
        from sqjax.models.config import check_attention

        found = []
        try:
            check_attention(self.kernel)
        except SqjaxError as e:
            found.append(("kernel", str(e)))
        if self.block < 128 or self.block % 128:
            found.append(("block", f"block={self.block} must be a positive multiple of 128"))
        return found

    def settings(self) -> dict[str, Any]:
        """Keyword arguments of LLM / TrainConfig / load_model."""
        return {"attention": self.kernel, "attention_block": self.block}


@dataclass(frozen=True)
class RunSettings:
    """The run-wide settings: where, which models, which stages to skip. A run config is this
    plus one field per stage holding its settings (`config_type`)."""

    run_dir: str = "runs/default"
    seed: int = 0
    mesh: MeshConfig = field(default_factory=MeshConfig)
    stage_mesh: dict[str, MeshConfig] = field(default_factory=dict)  # per stage, over `mesh`
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    skip_stages: list[str] = field(default_factory=list)  # not run by `sqjax run`
    stages: ClassVar[Registry] = Registry(())  # the stages whose settings follow


RUN_SETTINGS = tuple(f.name for f in dataclasses.fields(RunSettings))


def stage_mesh(cfg: RunSettings, stage: str) -> tuple[int, int, int]:
    """The (data, fsdp, tensor) sizes a stage runs on: its `stage_mesh` entry, else `mesh`."""
    m = cfg.stage_mesh.get(stage, cfg.mesh)
    return (m.data, m.fsdp, m.tensor)


def config_type(registry: Registry, name: str = "RunConfig", module: str = __name__) -> type:
    """The frozen run-config dataclass of `registry`: RunSettings plus, per stage with a
    settings class, a field named after the stage (`-` -> `_`) defaulting to that class's
    defaults. Its `stages` is the registry, which the framework reads the stage order from."""
    fields = [
        (s.section_name, s.config, field(default_factory=s.config)) for s in registry if s.config
    ]
    cls = dataclasses.make_dataclass(name, fields, bases=(RunSettings,), frozen=True)
    cls.stages = registry
    cls.__module__ = module
    return cls


class StageView:
    """The run config as one stage reads it (`ctx.config`): the run-wide settings, the
    stage's own section, and the keys its `config_deps` declare, which enter its fingerprint.
    Reading any other stage's setting is an error that names the key to declare."""

    def __init__(self, value: Any, stage: Stage, path: str = "") -> None:
        self._value, self._stage, self._path = value, stage, path

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._value, name)
        key = f"{self._path}.{name}" if self._path else name
        own = (*RUN_SETTINGS, "stages", self._stage.section_name)
        deps = self._stage.config_deps
        if (not self._path and name in own) or any(_within(key, d) for d in deps):
            return value
        if any(_within(d, key) for d in deps):
            return StageView(value, self._stage, key)
        raise ValueError(
            f"stage {self._stage.name} reads setting {key!r} without declaring it; add "
            f"{key!r} to the config_deps of its Stage so that a change to it reruns the stage"
        )


def _within(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def load_config(
    path: str | os.PathLike | Sequence[str | os.PathLike], overrides: list[str], cls: type
) -> Any:
    """Reads a YAML run config of type `cls` (config_type), or several: each later file is an
    overlay deep-merged over the ones before it (mappings key by key, other values
    replaced; `--config A --config B`), then applies `key.path=yaml_value` overrides in
    order. Each layer is validated as it is added, so an error names the file it came from
    (`b.yaml (over a.yaml): key 'qft.batch_size': ...`)."""
    layers = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not layers:
        raise SqjaxError("no config file given; pass --config FILE")
    data, cfg, source = {}, None, ""
    for layer in layers:
        text = _read_text(Path(layer))
        source = str(layer) if not source else f"{layer} (over {source})"
        data = merge(data, _yaml(text, str(layer)))
        cfg = _validated(data, source, cls)
    return _overridden(data, cfg, source, overrides, cls)


def read_layer(path: str | os.PathLike) -> dict:
    """One config file's YAML mapping, not validated (an overlay is a partial config)."""
    return _yaml(_read_text(Path(path)), str(path))


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise SqjaxError(f"{path}: config file not found")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise not_utf8(path, data, e) from None


def merge(base: Any, overlay: Any) -> Any:
    """`overlay` deep-merged over `base`: mappings merge key by key, anything else replaces."""
    if not (isinstance(base, dict) and isinstance(overlay, dict)):
        return overlay
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merge(base.get(key), value) if key in base else value
    return out


def _yaml(text: str, source: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise SqjaxError(f"{source}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise SqjaxError(f"{source}: the config's top level must be a mapping of settings")
    return data


def parse_config(text: str, source: str, overrides: list[str], cls: type) -> Any:
    """Like load_config, from YAML text; `source` names it in errors."""
    data = _yaml(text, source)
    return _overridden(data, _validated(data, source, cls), source, overrides, cls)


def _overridden(data: dict, cfg: Any, source: str, overrides: list[str], cls: type) -> Any:
    for item in overrides:
        key, value = _parse_override(item)
        data = _set_path(data, key, value, f"--set {item}")
        cfg = _validated(data, f"--set {item} (on {source})", cls)
    return cfg


def _validated(data: Any, source: str, cls: type) -> RunSettings:
    cfg = build(cls, data, source)
    check_model_names(cfg, source)
    for name in cfg.skip_stages:
        if name not in cfg.stages:
            raise SqjaxError(f"{source}: skip_stages: unknown stage {name!r}; see `sqjax stages`")
    for name in cfg.stage_mesh:
        if name not in cfg.stages:
            raise SqjaxError(f"{source}: stage_mesh: unknown stage {name!r}; see `sqjax stages`")
    for key, message in cfg.attention.problems():
        raise SqjaxError(f"{source}: key 'attention.{key}': {message}")
    return cfg


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise SqjaxError(f"--set {item!r}: expected KEY=VALUE, e.g. --set seed=1")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError:
        return key.strip(), raw


def _set_path(data: Any, key: str, value: Any, source: str) -> dict:
    if not isinstance(data, dict):
        raise SqjaxError(f"{source}: the config's top level is not a mapping")
    data = dict(data)
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part, {})
        if not isinstance(child, dict):
            raise SqjaxError(f"{source}: {'.'.join(parts[: i + 1])!r} is not a mapping")
        node[part] = dict(child)
        node = node[part]
    node[parts[-1]] = value
    return data


def model_refs(obj: Any, path: str = "") -> list[tuple[str, str]]:
    """(key path, model name) for every non-empty model field below a config object."""
    found: list[tuple[str, str]] = []
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{path}.{f.name}" if path else f.name
        values = value if isinstance(value, list) else [value]
        for i, v in enumerate(values):
            sub = f"{key}[{i}]" if isinstance(value, list) else key
            if f.metadata.get(MODEL_REF) and isinstance(v, str) and v:
                found.append((sub, v))
            elif dataclasses.is_dataclass(v):
                found.extend(model_refs(v, sub))
    return found


def _dir_names(cfg: Any) -> list[tuple[str, str]]:
    """(key path, name) for each key of a stage setting marked DIR_NAMES."""
    found = []
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        for f in dataclasses.fields(value):
            if f.metadata.get("dir_names"):
                found += [(f"{section.name}.{f.name}", k) for k in getattr(value, f.name)]
    return found


def check_model_names(cfg: RunSettings, source: str) -> None:
    """Every model and benchmark name is a plain identifier; every model field names a
    `models` entry, optionally as `<stage>:<name>`."""
    for name in cfg.models:
        check_name(name, "models", source)
    for key, name in _dir_names(cfg):
        check_name(name, key, source)
    for key, ref in model_refs(cfg):
        stage, _, name = ref.rpartition(":")
        if stage and stage not in cfg.stages:
            raise SqjaxError(f"{source}: key {key!r}: {ref!r} names unknown stage {stage!r}")
        if name not in cfg.models:
            known = ", ".join(sorted(cfg.models)) or "none"
            raise SqjaxError(
                f"{source}: key {key!r}: model {name!r} is not in the models table "
                f"(known: {known}); add it under `models:`"
            )


def resolve_model(cfg: RunSettings, run_dir: Path, ref: str) -> ModelEntry:
    """The entry for `name` or `<stage>:<name>` (the checkpoint in RUN/<stage>/artifacts/)."""
    if not ref:
        raise SqjaxError("a model field of this stage is empty; set it in the config")
    stage, _, name = ref.rpartition(":")
    if name not in cfg.models:
        raise SqjaxError(f"model {ref!r} is not in the models table ({sorted(cfg.models)})")
    entry = cfg.models[name]
    if stage:
        return ModelEntry(str(run_dir / stage / "artifacts" / name), entry.dtype)
    if entry.path.startswith(assets.PREFIX):
        return ModelEntry(str(assets.resolve(entry.path)), entry.dtype)
    return entry


def get_key(cfg: Any, dotted: str) -> Any:
    """The value at a dotted key path (`eval.benchmarks`)."""
    for part in dotted.split("."):
        cfg = cfg[part] if isinstance(cfg, dict) else getattr(cfg, part)
    return cfg


def to_plain(obj: Any) -> Any:
    """A config object as plain JSON-able dicts and lists."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
