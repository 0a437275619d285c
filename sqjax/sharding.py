"""Mesh construction and the logical-axis rules that map model axes onto it.

The model tags every parameter with logical axis names (models/layers.py `param`); a rules
table maps each name to mesh axes. Training shards weights FSDP-style over `fsdp` and
tensor-parallel over `tensor`; sampling keeps weights whole along `embed` (no per-token
all-gathers) and splits heads, ffn and vocab over `tensor`. Rows go over `data` and `fsdp`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sqjax.errors import SqjaxError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH = ("data", "fsdp")

Rules = Mapping[str, str | tuple[str, ...] | None]

# `layers` (the leading axis of stacked decoder weights and of the KV cache) is never
# sharded: the layer scan reads one layer at a time, and every device needs every layer.
TRAIN_RULES: Rules = {
    "batch": BATCH,
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "mlp": "tensor",
    "head_dim": None,
    "norm": None,
    "layers": None,
}
SAMPLE_RULES: Rules = {**TRAIN_RULES, "embed": None}  # sampling keeps weights whole over fsdp

log = logging.getLogger(__name__)


def check_mesh_sizes(sizes: Sequence[int]) -> None:
    """SqjaxError unless every (data, fsdp, tensor) size is >= 1 or -1, and at most one is -1
    (the rule of make_mesh, also checked when a run config is loaded)."""
    named = dict(zip(MESH_AXES, sizes))
    if any(s == 0 or s < -1 for s in sizes) or list(sizes).count(-1) > 1:
        raise SqjaxError(f"mesh sizes {named}: each must be >= 1 or -1, at most one -1 (the rest)")


def make_mesh(
    data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence | None = None
) -> Mesh:
    """A (data, fsdp, tensor) mesh over all devices; one axis may be -1 (the rest)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [data, fsdp, tensor]
    check_mesh_sizes(sizes)
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % known:
            raise SqjaxError(
                f"{len(devices)} devices do not divide into mesh {dict(zip(MESH_AXES, sizes))}"
            )
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        raise SqjaxError(
            f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices but {len(devices)} are "
            "available; set the mesh sizes so their product equals the device count"
        )
    return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES)


def _axis_size(mesh: Mesh, axes: str | tuple[str, ...] | None) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[a] for a in axes)


def spec_for(
    logical: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules: Rules
) -> PartitionSpec:
    """PartitionSpec for one array; a dimension its mesh axes do not divide stays whole."""
    out, used = [], set()
    for name, dim in zip(logical, shape):
        axes = rules.get(name) if name is not None else None
        flat = (axes,) if isinstance(axes, str) else tuple(axes or ())
        if not flat or used & set(flat) or dim % _axis_size(mesh, axes):
            if flat and dim % _axis_size(mesh, axes):
                log.debug(
                    "dimension %s=%d not divisible by mesh axes %s: replicated", name, dim, flat
                )
            out.append(None)
            continue
        used |= set(flat)
        out.append(axes)
    return PartitionSpec(*out)


def state_shardings(state: nnx.State, mesh: Mesh, rules: Rules) -> nnx.State:
    """NamedSharding for every variable of a model state (abstract or concrete)."""

    def one(var):
        axes = var.get_metadata().get("logical_axes") or (None,) * len(var.shape)
        return var.replace(NamedSharding(mesh, spec_for(axes, var.shape, mesh, rules)))

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Rows over (data, fsdp), everything else whole."""
    return NamedSharding(mesh, PartitionSpec(BATCH, *([None] * (ndim - 1))))


def shard_model(model: nnx.Module, mesh: Mesh, rules: Rules = SAMPLE_RULES) -> nnx.Module:
    """Moves a model's parameters onto the mesh, in place, and returns it."""
    state = nnx.state(model)
    shardings = state_shardings(state, mesh, rules)
    nnx.update(model, jax.tree.map(place, state, shardings))
    return model


def place(x, sharding: NamedSharding):
    """device_put that also works onto a mesh spanning processes: an array held whole by
    this process goes through host memory (every process holds the same value), since
    backends without cross-host transfers refuse a device-to-device copy there."""
    if isinstance(x, jax.Array) and x.is_fully_addressable and not sharding.is_fully_addressable:
        x = np.asarray(x)
    return jax.device_put(x, sharding)


def on_mesh(mesh: Mesh | None):
    """A context in which programs trace against `mesh` (its abstract mesh; a no-op for
    None): constrain_rows and the attention kernels' shard_map read it, and the kernels
    learn from it which platform they compile for. jit keys its cache on it, so a program
    called under two meshes compiles once for each."""
    if mesh is None:
        return contextlib.nullcontext()
    return jax.sharding.use_abstract_mesh(mesh.abstract_mesh)


def constrain_rows(x: jax.Array) -> jax.Array:
    """`x` with its leading (row) axis split over (data, fsdp), the other axes as XLA
    chooses, when traced under a mesh with those axes (the train step traces under its mesh:
    jax.sharding.use_abstract_mesh); as is otherwise, or when the rows do not divide. Without
    it XLA may keep every row of the activations on each device with the embedding split over
    `fsdp` (the weights' layout), so they grow with the global batch, not the per-device one."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not set(BATCH) <= set(mesh.axis_names):
        return x
    if x.shape[0] % math.prod(mesh.shape[a] for a in BATCH):
        return x
    rest = [PartitionSpec.UNCONSTRAINED] * (x.ndim - 1)
    return jax.lax.with_sharding_constraint(x, PartitionSpec(BATCH, *rest))
