"""Causal GQA self-attention through jax's Pallas splash-attention kernel (TPU).

`call(L, window, block, interpret)` returns the per-shard function sqjax.models.kernels runs
under shard_map: q [B, L, n, H], k and v [B, L, k, H] (a shard's heads), segment ids [B, L].
The kernel works on one row with heads first ([n, L, H]), so rows are vmapped and heads
transposed in and out. Queries are scaled by 1/sqrt(H) before the kernel, which takes
logits as q.k. The mask is static: causal, or causal within a sliding window (`LocalMask`,
keys q - window < k <= q, as sqjax's attention_mask), combined with the segment ids;
splash skips the blocks it hides. Kernels are built once per (length, window, heads,
block, interpret): the mask's block tables are computed in NumPy when one is made.
Mosaic refuses a bf16 dot asked for at float32 precision: on TPU, with
jax_default_matmul_precision raised, sqjax.models.kernels falls back to XLA (one log line).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm


def call(length: int, window: int | None, block: int, interpret: bool):
    """The per-shard attention of rows padded to `length` (a multiple of `block`)."""

    def attend(q_BLnH, k_BLkH, v_BLkH, seg_BL):
        heads, H = q_BLnH.shape[2], q_BLnH.shape[3]
        kernel = _kernel(length, window, heads, block, interpret)
        q_BnLH = (q_BLnH * jnp.asarray(H**-0.5, q_BLnH.dtype)).transpose(0, 2, 1, 3)
        k_BkLH, v_BkLH = k_BLkH.transpose(0, 2, 1, 3), v_BLkH.transpose(0, 2, 1, 3)
        out_BnLH = jax.vmap(kernel)(q_BnLH, k_BkLH, v_BkLH, sk.SegmentIds(seg_BL, seg_BL))
        return out_BnLH.transpose(0, 2, 1, 3)

    return attend


@functools.cache
def _kernel(length: int, window: int | None, heads: int, block: int, interpret: bool):
    shape = (length, length)
    if window is None:
        mask = sm.CausalMask(shape)
    else:
        mask = sm.LocalMask(shape, window_size=(window - 1, 0), offset=0)
    sizes = sk.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    with jax.ensure_compile_time_eval():  # concrete block tables, reused by every trace
        return sk.make_splash_mha(
            sm.MultiHeadMask([mask] * heads),
            block_sizes=sizes,
            head_shards=1,
            q_seq_shards=1,
            interpret=interpret,
        )
