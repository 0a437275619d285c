"""Fill a model from HF-named tensors, one tensor at a time, straight into its sharding.

The caller supplies the set of available keys and a function that reads one tensor; peak
host memory is about one tensor beyond the model. A stacked layer parameter is created as
zeros on its devices and filled one layer at a time in place, so neither the host nor one
device ever holds a whole stacked copy. Every key is validated against the
family's weight table (models/weight_maps.py): missing, unused and mis-shaped tensors are
errors that name the key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sqjax.errors import SqjaxError
from sqjax.models.config import ModelConfig, parse_dtype
from sqjax.models.decoder import Decoder, abstract_layers
from sqjax.models.weight_maps import weight_map
from sqjax.sharding import SAMPLE_RULES, Rules, make_mesh, place, state_shardings

# Keys HF checkpoints may carry that hold no weights of their own.
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def abstract_model(cfg: ModelConfig) -> Decoder:
    return nnx.eval_shape(lambda: Decoder(cfg, nnx.Rngs(0)))


def load_from_tensors(
    cfg: ModelConfig,
    keys: Iterable[str],
    read: Callable[[str], np.ndarray],
    *,
    mesh: Mesh | None = None,
    rules: Rules = SAMPLE_RULES,
    source: str = "checkpoint",
    per_layer: bool = False,
) -> Decoder:
    """Builds a Decoder whose parameters are the transformed tensors `read(key)`; with
    `per_layer`, in Decoder.unstacked's layout (one array set per layer), each layer's
    tensors placed as they are read."""
    keys = set(keys)
    model = abstract_model(cfg)
    if per_layer:
        model.blocks = abstract_layers(model.config)
    mesh = mesh or make_mesh(devices=jax.local_devices()[:1])
    flat = dict(nnx.to_flat_state(nnx.state(model)))
    shardings = dict(nnx.to_flat_state(state_shardings(nnx.state(model), mesh, rules)))
    entries = weight_map(cfg)
    expected = {e.hf_key for e in entries}
    missing = sorted(expected - keys)
    if missing:
        raise SqjaxError(f"{source}: missing tensor {missing[0]!r} ({len(missing)} missing in all)")
    unused = sorted(k for k in keys - expected if not _ignorable(k, cfg, keys))
    if unused:
        raise SqjaxError(
            f"{source}: unused tensor {unused[0]!r} ({len(unused)} unused in all); "
            f"the checkpoint does not match architecture {cfg.family}/{cfg.head}"
        )
    pdtype = parse_dtype(cfg.param_dtype)
    for entry in entries:
        arrays = entry.to_sqjax(np.asarray(read(entry.hf_key)), cfg)
        stacked = entry.layer is not None and not per_layer
        for path, array in zip(entry.paths, arrays):
            if entry.layer is not None and per_layer:  # ("blocks", i, ...)
                path = (path[0], entry.layer, *path[1:])
            var, sharding = flat[path], shardings[path].get_value()
            want = tuple(var.shape[1:]) if stacked else tuple(var.shape)
            if tuple(array.shape) != want:
                name = ".".join(map(str, path)) + (
                    "" if entry.layer is None else f"[{entry.layer}]"
                )
                raise SqjaxError(
                    f"{source}: tensor {entry.hf_key!r} has a shape that gives {tuple(array.shape)} for "
                    f"{name}, expected {want} from the config"
                )
            if not stacked:
                var.set_value(place(array.astype(pdtype, copy=False), sharding))
                continue
            if not isinstance(var.get_value(), jax.Array):  # abstract until its first layer
                var.set_value(_zeros(var.shape, pdtype, sharding))
            layer = place(array.astype(pdtype, copy=False), _layer_sharding(sharding))
            var.set_value(_set_layer(var.get_value(), layer, entry.layer))
    nnx.update(model, nnx.from_flat_state(flat))
    return model


def _layer_sharding(stacked: NamedSharding) -> NamedSharding:
    """The sharding of one layer of a stacked parameter (its `layers` axis is never split)."""
    return NamedSharding(stacked.mesh, PartitionSpec(*stacked.spec[1:]))


def _zeros(shape, dtype, sharding: NamedSharding) -> jax.Array:
    """A zero array created on the devices of its sharding (no host copy)."""
    return _zeros_program(tuple(shape), jnp.dtype(dtype), sharding)()


@functools.cache
def _zeros_program(shape: tuple[int, ...], dtype, sharding: NamedSharding):
    """One jitted program per (shape, dtype, sharding): a later load (another stage, another
    model of the same shapes) compiles nothing."""
    return jax.jit(functools.partial(jnp.zeros, shape, dtype), out_shardings=sharding)


@functools.partial(jax.jit, donate_argnums=0)
def _set_layer(stacked_LX: jax.Array, layer_X: jax.Array, index: int) -> jax.Array:
    """stacked_LX with layer `index` replaced, in place (the stacked array is donated)."""
    return jax.lax.dynamic_update_index_in_dim(stacked_LX, layer_X, index, 0)


def _ignorable(key: str, cfg: ModelConfig, keys: set[str]) -> bool:
    if key.endswith(IGNORED_SUFFIXES):
        return True
    # Tied checkpoints may still carry the output matrix as an alias of the embedding.
    return cfg.tie_word_embeddings and key in ("lm_head.weight", "output.weight")


def export_tensors(model: Decoder) -> Iterable[tuple[str, np.ndarray]]:
    """Yields (HF key, numpy tensor) for every weight of the model, in table order (a
    stacked or an unstacked decoder alike)."""
    cfg = model.config
    flat = dict(nnx.to_flat_state(nnx.state(model)))

    def value(path, layer):
        if layer is None:
            return flat[path].get_value()
        if model.per_layer:  # ("blocks", i, ...) instead of ("blocks", ...)[i]
            return flat[(path[0], layer, *path[1:])].get_value()
        return flat[path].get_value()[layer]

    for entry in weight_map(cfg):
        arrays = tuple(to_host(value(p, entry.layer)) for p in entry.paths)
        yield entry.hf_key, entry.to_hf(arrays, cfg)


def to_host(array: jax.Array) -> np.ndarray:
    """The whole array in host memory; when parts live on other processes' devices, every
    process must call this for the same arrays in the same order (it is a collective)."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(jax.device_get(array))
