"""The train state and one pure, jitted train step with explicit shardings and donation.

`train_step(state, batch) -> (state, metrics)`: every batch array has a leading micro-batch
axis [A, b, ...]; the step scans over the A micro-batches, summing losses, gradients and
the loss denominator (target tokens for SFT, pairs for DPO), then divides once by the
step's total denominator, so accumulation equals one big batch exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sqjax.sharding import BATCH, TRAIN_RULES, on_mesh, state_shardings
from sqjax.training.sft import Objective


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer steps taken
    params: nnx.State  # the model's nnx.Param state (master weights)
    opt_state: Any


def state_sharding(
    params: nnx.State, optimizer: optax.GradientTransformation, mesh: Mesh
) -> TrainState:
    """NamedShardings of a TrainState: parameters by TRAIN_RULES (FSDP over `fsdp`, tensor
    parallel over `tensor`), optimizer moments like their parameters, the rest replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())
    params_s = state_shardings(params, mesh, TRAIN_RULES)
    abstract_opt = jax.eval_shape(optimizer.init, params)
    opt_s = optax.tree_map_params(
        optimizer, lambda _, s: s, abstract_opt, params_s, transform_non_params=lambda _: replicated
    )
    return TrainState(step=replicated, params=params_s, opt_state=opt_s)


def init_state(
    params: nnx.State, optimizer: optax.GradientTransformation, sharding: TrainState
) -> TrainState:
    """A step-0 TrainState placed on the mesh."""

    def init(params):
        return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))

    return jax.jit(init, out_shardings=sharding)(params)


def batch_spec(mesh: Mesh, array_ndim: int) -> NamedSharding:
    """[A, b, ...] batch arrays: micro-batch axis whole, rows over (data, fsdp)."""
    return NamedSharding(mesh, PartitionSpec(None, BATCH, *([None] * (array_ndim - 2))))


def _accumulate(loss_and_grad, params, batch):
    def body(carry, micro):
        (loss, (denom, sums)), grads = loss_and_grad(params, micro)
        new = (loss, denom, sums, grads)
        return jax.tree.map(jnp.add, carry, new), None

    first = jax.tree.map(lambda x: x[0], batch)
    shapes = jax.eval_shape(loss_and_grad, params, first)
    (loss_s, (denom_s, sums_s)), grads_s = shapes
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (loss_s, denom_s, sums_s, grads_s))
    (loss, denom, sums, grads), _ = jax.lax.scan(body, zeros, batch)
    return loss, denom, sums, grads


def make_train_step(
    graphdef: nnx.GraphDef,
    objective: Objective,
    optimizer: optax.GradientTransformation,
    lr_schedule: optax.Schedule,
    sharding: TrainState,
    batch_shapes: dict[str, tuple[int, ...]],
    mesh: Mesh,
    donate: bool = True,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The jitted `train_step(state, batch) -> (state, metrics)` for fixed batch shapes."""

    def loss_fn(params, micro):
        return objective(nnx.merge(graphdef, params), micro)

    loss_and_grad = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        loss_sum, denom, sums, grad_sums = _accumulate(loss_and_grad, state.params, batch)
        scale = 1.0 / jnp.maximum(denom, 1.0)
        grads = jax.tree.map(lambda g: (g * scale).astype(g.dtype), grad_sums)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {k: v * scale for k, v in sums.items()}
        metrics |= {
            "loss": loss_sum * scale,
            "denominator": denom,
            "grad_norm": optax.tree.norm(grads),
            "lr": lr_schedule(state.step),
        }
        return TrainState(state.step + 1, params, opt_state), metrics

    def traced(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        # under the mesh, the decoder keeps each layer's activations on their own rows'
        # devices (sqjax.sharding.constrain_rows)
        with on_mesh(mesh):
            return train_step(state, batch)

    batch_s = {k: batch_spec(mesh, len(shape)) for k, shape in batch_shapes.items()}
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        traced,
        in_shardings=(sharding, batch_s),
        out_shardings=(sharding, replicated),
        donate_argnums=(0,) if donate else (),
    )
