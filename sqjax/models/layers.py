"""Building blocks shared by every family: parameters with logical axes, RMSNorm, RoPE."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from sqjax.models.config import ModelConfig, RopeScaling


def param(rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str | None, ...], dtype,
          scale: float | None = None, zeros: bool = False, ones: bool = False,
          layers: int | None = None) -> nnx.Param:
    """A parameter tagged with logical axis names (mapped to mesh axes by sqjax.sharding).

    `layers` stacks one copy per decoder layer on a leading `layers` axis (never sharded)."""
    assert len(shape) == len(axes), (shape, axes)
    if layers is not None:
        shape, axes = (layers, *shape), ("layers", *axes)
    if zeros:
        value = jnp.zeros(shape, dtype)
    elif ones:
        value = jnp.ones(shape, dtype)
    else:
        std = 0.02 if scale is None else scale
        value = (std * jax.random.normal(rngs.params(), shape, jnp.float32)).astype(dtype)
    return nnx.Param(value, logical_axes=axes)


class RMSNorm(nnx.Module):
    """RMSNorm computed in float32, as HF Llama does, then cast back."""

    def __init__(self, dim: int, eps: float, param_dtype, rngs: nnx.Rngs, layers: int | None = None):
        self.weight = param(rngs, (dim,), ("norm",), param_dtype, ones=True, layers=layers)
        self.eps = eps

    def __call__(self, x_BLD: jax.Array) -> jax.Array:
        x = x_BLD.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return (self.weight[...].astype(jnp.float32) * x).astype(x_BLD.dtype)


def rope_inv_freq(head_dim: int, theta: float, scaling: RopeScaling) -> jax.Array:
    """Inverse frequencies, as transformers' `ROPE_INIT_FUNCTIONS` compute them."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    if scaling.kind == "linear":
        return inv_freq / scaling.factor
    if scaling.kind != "llama3":
        return inv_freq
    low_wavelen = scaling.original_max_position_embeddings / scaling.low_freq_factor
    high_wavelen = scaling.original_max_position_embeddings / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = jnp.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (scaling.original_max_position_embeddings / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    is_medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return jnp.where(is_medium, smoothed, scaled)


def rope_tables(cfg: ModelConfig, positions_BL: jax.Array) -> tuple[jax.Array, jax.Array]:
    """cos and sin of shape [B, L, H] in float32 (HF's rotate-half layout)."""
    inv_freq = rope_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
    angles_BLh = positions_BL.astype(jnp.float32)[..., None] * inv_freq
    angles_BLH = jnp.concatenate([angles_BLh, angles_BLh], axis=-1)
    return jnp.cos(angles_BLH), jnp.sin(angles_BLH)


def apply_rope(x_BLNH: jax.Array, cos_BLH: jax.Array, sin_BLH: jax.Array) -> jax.Array:
    x = x_BLNH.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    out = x * cos_BLH[:, :, None, :] + rotated * sin_BLH[:, :, None, :]
    return out.astype(x_BLNH.dtype)
