"""The KV cache and the attention masks built from token positions.

Every key slot carries the position of the token stored in it, or -1 when empty or padding.
One rule then covers training, scoring, prefill and decode, packed or padded, left or right:
a query at position p may attend a key at position q iff q >= 0, q <= p, both come from the
same segment, and p - q < window (sliding-window layers only).

The cache follows the decoder's layer layout: stacked over layers (a leading `layers` axis)
for a stacked decoder, which runs its blocks as one `lax.scan` over weights and cache
together; a tuple of per-layer arrays for an unstacked one (`Decoder.unstacked`), whose layer
loop then reads each layer's keys and values in place.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Cache:
    """Keys as [layers, B, K, H, S] and values as [layers, B, K, S, H] (the layouts in which
    a decode step's two attention dots, q.k over H and p.v over S, read a layer's cache
    without transposing it), or tuples of one [B, K, H, S] / [B, K, S, H] array per layer,
    plus the position held by each slot (-1 = empty)."""

    k_LBKHS: jax.Array | tuple[jax.Array, ...]
    v_LBKSH: jax.Array | tuple[jax.Array, ...]
    pos_BS: jax.Array

    @property
    def size(self) -> int:
        return self.pos_BS.shape[1]

    @property
    def per_layer(self) -> bool:
        return isinstance(self.k_LBKHS, tuple)


# logical axes of each field (None: the cache-slot axis, never sharded), for sharding rules
AXES = {
    "k_LBKHS": ("layers", "batch", "kv_heads", "head_dim", None),
    "v_LBKSH": ("layers", "batch", "kv_heads", None, "head_dim"),
    "pos_BS": ("batch", None),
}
SLOT_AXIS = {name: axes.index(None) for name, axes in AXES.items()}  # the axis of slots
KV_FIELDS = ("k_LBKHS", "v_LBKSH")


def init_cache(
    num_layers: int,
    batch: int,
    size: int,
    num_kv_heads: int,
    head_dim: int,
    dtype,
    per_layer: bool = False,
) -> Cache:
    L, B, K, H, S = num_layers, batch, num_kv_heads, head_dim, size
    if per_layer:
        return Cache(
            k_LBKHS=tuple(jnp.zeros((B, K, H, S), dtype) for _ in range(L)),
            v_LBKSH=tuple(jnp.zeros((B, K, S, H), dtype) for _ in range(L)),
            pos_BS=jnp.full((B, S), -1, jnp.int32),
        )
    return Cache(
        k_LBKHS=jnp.zeros((L, B, K, H, S), dtype),
        v_LBKSH=jnp.zeros((L, B, K, S, H), dtype),
        pos_BS=jnp.full((B, S), -1, jnp.int32),
    )


def map_kv(fn, *caches: Cache, pos_BS: jax.Array) -> Cache:
    """A Cache whose k and v are fn(array, slot axis) of the given caches' fields, with
    positions pos_BS (the one place that knows which fields hold keys and values). `fn` sees
    stacked arrays; a per-layer cache's arrays reach it as stacks of one layer."""

    def field(f):
        values = [getattr(c, f) for c in caches]
        if not isinstance(values[0], tuple):
            return fn(*values, SLOT_AXIS[f])
        return tuple(fn(*(v[None] for v in vs), SLOT_AXIS[f])[0] for vs in zip(*values))

    return Cache(**{f: field(f) for f in KV_FIELDS}, pos_BS=pos_BS)


def write_rows(
    cache_BS: jax.Array, new_BL: jax.Array, start_B: jax.Array, axis: int = 1
) -> jax.Array:
    """Writes new_BL[b] into cache_BS[b] at slots start_B[b] : start_B[b] + L of `axis`
    (the slot axis of both arrays) for every row b."""

    def one(row, new, start):
        index = tuple(start if d == axis - 1 else 0 for d in range(row.ndim))
        return jax.lax.dynamic_update_slice(row, new.astype(row.dtype), index)

    return jax.vmap(one)(cache_BS, new_BL, start_B)


def write_layer(cache_L: jax.Array, new_BLKH: jax.Array, layer, start_B: jax.Array, axis: int):
    """Writes the L new keys or values of every row b ([B, L, K, H]) into one layer of a
    stacked cache array at slots start_B[b] .. start_B[b] + L - 1 of `axis` (3 or 4);
    slots past the end are dropped. A scatter of just the new entries, in place when the
    cache is donated or carried.

    The kv heads are scatter indices, not a window: with (K, H) as the update window XLA TPU
    lays the cache out with K inside H's tile, and then copies each layer's K and V out of
    the stacked cache (and K once more) before attending; with H alone as the window the
    cache keeps its layout and the attention dots read the layer in place (Qwen2-Math-7B
    decode on v5p-8: 1.78x -> 1.16x the minimum bytes per step, bench/tpu_layout.py)."""
    B, L, K = new_BLKH.shape[:3]
    b_BLK = jnp.broadcast_to(jnp.arange(B)[:, None, None], (B, L, K))
    k_BLK = jnp.broadcast_to(jnp.arange(K), (B, L, K))
    s_BLK = jnp.broadcast_to((start_B[:, None] + jnp.arange(L))[:, :, None], (B, L, K))
    index = (layer, b_BLK, k_BLK) + (slice(None),) * (axis - 3) + (s_BLK,)
    # advanced indices split by slices: the [B, L, K] index shape comes first, then H
    return cache_L.at[index].set(new_BLKH.astype(cache_L.dtype), mode="drop")


def read_layer(cache_L: jax.Array, layer, span: int, axis: int) -> jax.Array:
    """One layer of a stacked cache array, its first `span` slots (a slice XLA can fuse into
    the attention dots on TPU and GPU: the cache is not copied to attend a shorter span)."""
    sizes = list(cache_L.shape)
    sizes[0], sizes[axis] = 1, span
    start = (layer,) + (0,) * (cache_L.ndim - 1)
    return jax.lax.dynamic_slice(cache_L, start, sizes)[0]


def attention_mask(
    q_pos_BL: jax.Array,
    k_pos_BS: jax.Array,
    window: jax.Array | int | None = None,
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
