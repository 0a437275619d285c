"""The KV cache and the attention masks built from token positions.

Every key slot carries the position of the token stored in it, or -1 when empty or padding.
One rule then covers training, scoring, prefill and decode, packed or padded, left or right:
a query at position p may attend a key at position q iff q >= 0, q <= p, both come from the
same segment, and p - q < window (sliding-window layers only).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct


class LayerCache(NamedTuple):
    """Keys as [B, K, H, S] and values as [B, K, S, H]: the layouts in which a decode step's
    two attention dots (q.k over H, p.v over S) read the cache without transposing it first
    (a transposed copy of the whole cache per layer per step cost ~20% of a CPU decode step)."""

    k_BKHS: jax.Array
    v_BKSH: jax.Array


# logical axes of each field (None: the cache-slot axis, never sharded), for sharding rules
AXES = LayerCache(("batch", "kv_heads", "head_dim", None), ("batch", "kv_heads", None, "head_dim"))
SLOT_AXIS = LayerCache(*(axes.index(None) for axes in AXES))  # the axis that indexes slots


@struct.dataclass
class Cache:
    """Per-layer keys and values plus the position held by each slot (-1 = empty)."""

    layers: tuple[LayerCache, ...]
    pos_BS: jax.Array

    @property
    def size(self) -> int:
        return self.pos_BS.shape[1]


def init_cache(num_layers: int, batch: int, size: int, num_kv_heads: int, head_dim: int, dtype) -> Cache:
    k_shape, v_shape = (batch, num_kv_heads, head_dim, size), (batch, num_kv_heads, size, head_dim)
    layers = tuple(
        LayerCache(jnp.zeros(k_shape, dtype), jnp.zeros(v_shape, dtype)) for _ in range(num_layers)
    )
    return Cache(layers=layers, pos_BS=jnp.full((batch, size), -1, jnp.int32))


def write_rows(cache_BS: jax.Array, new_BL: jax.Array, start_B: jax.Array, axis: int = 1) -> jax.Array:
    """Writes new_BL[b] into cache_BS[b] at slots start_B[b] : start_B[b] + L of `axis`
    (the slot axis of both arrays) for every row b."""

    def one(row, new, start):
        index = tuple(start if d == axis - 1 else 0 for d in range(row.ndim))
        return jax.lax.dynamic_update_slice(row, new.astype(row.dtype), index)

    return jax.vmap(one)(cache_BS, new_BL, start_B)


def attention_mask(
    q_pos_BL: jax.Array,
    k_pos_BS: jax.Array,
    window: int | None = None,
    q_seg_BL: jax.Array | None = None,
    k_seg_BS: jax.Array | None = None,
) -> jax.Array:
    """Boolean [B, L, S] mask: which keys each query may attend (see module docstring)."""
    q = q_pos_BL[:, :, None]
    k = k_pos_BS[:, None, :]
    mask = (k >= 0) & (k <= q)
    if window is not None:
        mask &= q - k < window
    if q_seg_BL is not None:
        mask &= q_seg_BL[:, :, None] == k_seg_BS[:, None, :]
    return mask


def positions_from_mask(attention_mask_BL: jax.Array) -> jax.Array:
    """Positions 0.. over the real tokens of each row, -1 on padding (left or right)."""
    mask = attention_mask_BL.astype(jnp.int32)
    return jnp.where(mask > 0, jnp.cumsum(mask, axis=-1) - 1, -1)
