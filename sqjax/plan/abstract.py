"""Models without weights: a ModelConfig from config.json (or a preset for hub ids) and an
abstract Decoder whose parameters are jax.ShapeDtypeStructs (nnx.eval_shape; nothing read,
nothing allocated)."""

from __future__ import annotations

from flax import nnx

from sqjax import assets, paths
from sqjax.errors import SqjaxError
from sqjax.models.config import ModelConfig
from sqjax.models.decoder import Decoder
from sqjax.models.presets import PRESETS
from sqjax.pipeline.config import RunSettings


def model_config(run: RunSettings, ref: str) -> ModelConfig:
    """The architecture of a model field's value: a `models` name or `<stage>:<name>` (the
    checkpoint a stage will write has its base model's architecture; `difficulty:` ones a
    one-output score head)."""
    stage, _, name = ref.rpartition(":")
    if name not in run.models:
        raise SqjaxError(f"model {ref!r} is not in the models table ({sorted(run.models)})")
    path = run.models[name].path
    cfg = _config_of(path)
    if stage == "difficulty":
        cfg = cfg.replace(head="score", num_labels=1)
    return cfg.replace(**run.attention.settings())


def _config_of(path: str) -> ModelConfig:
    """A model path's architecture: its config.json (a local or gs:// directory, read through
    sqjax.paths), a local GGUF file's metadata, or the preset of a hub id."""
    from sqjax.checkpoints.gguf_io import gguf_config, open_reader
    from sqjax.checkpoints.safetensors_io import load_config

    where = assets.resolve(path) if path.startswith(assets.PREFIX) else paths.as_path(path)
    if (where / "config.json").is_file():
        return load_config(where)
    if not paths.is_remote(where) and where.is_file() and where.suffix == ".gguf":
        return gguf_config(open_reader(where), str(where))
    if path in PRESETS:
        return PRESETS[path]
    raise SqjaxError(
        f"model path {path!r}: no config.json there and no preset of that name "
        f"(sqjax/models/presets.py); plan reads only configs: give a local or gs:// directory "
        f"with the model's config.json"
    )


def abstract_model(cfg: ModelConfig, dtype: str, param_dtype: str) -> Decoder:
    """A Decoder of `cfg` computing in `dtype` with `param_dtype` weights, all abstract."""
    cfg = cfg.replace(dtype=dtype, param_dtype=param_dtype)
    return nnx.eval_shape(lambda: Decoder(cfg, nnx.Rngs(0)))


def param_count(model: Decoder) -> int:
    import math

    import jax

    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
