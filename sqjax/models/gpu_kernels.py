"""Causal GQA self-attention on GPU: jax's Pallas-Triton flash kernel and cuDNN flash
attention, as the per-shard functions sqjax.models.kernels runs (q [B, L, n, H], k and v
[B, L, k, H], the kernels' segment ids [B, L]; PAD marks padding).

- Triton (`jax.experimental.pallas.ops.gpu.attention.mha`): segment ids, so packed rows; one
  head count for q, k and v, so each kv head is repeated over its query group; no sliding
  window. On CPU it runs in interpret mode (the tests' check).
- cuDNN (`jax.nn.dot_product_attention(implementation="cudnn")`): GQA and a sliding window,
  bf16/fp16 only, and padding only as per-row lengths at the end of a row. Each row's real
  tokens are therefore moved to its front first (a stable sort, so their order is kept and
  index causality still equals position causality), then moved back.

`probe(kernel, dtype, window)` compiles a tiny forward and backward call of the kernel once
per process and says why it cannot run here (None: it can): the fallback is chosen before
a real program fails on a GPU, CUDA or cuDNN version without the kernel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sqjax.models.kernels import PAD


def triton_call(interpret: bool):
    from jax.experimental.pallas.ops.gpu import attention as triton

    def attend(q_BLnH, k_BLkH, v_BLkH, seg_BL):
        group = q_BLnH.shape[2] // k_BLkH.shape[2]
        k_BLnH, v_BLnH = (jnp.repeat(x, group, axis=2) for x in (k_BLkH, v_BLkH))
        return triton.mha(
            q_BLnH,
            k_BLnH,
            v_BLnH,
            seg_BL,
            sm_scale=q_BLnH.shape[-1] ** -0.5,
            causal=True,
            interpret=interpret,
        )

    return attend


def cudnn_call(window: int | None):
    local = None if window is None else (window - 1, 0)

    def attend(q_BLnH, k_BLkH, v_BLkH, seg_BL):
        real_BL = seg_BL != PAD
        order_BL = jnp.argsort(~real_BL, axis=1, stable=True)  # real tokens first, in order

        def front(x):
            return jnp.take_along_axis(x, order_BL[:, :, None, None], axis=1)

        lengths_B = jnp.maximum(real_BL.sum(axis=1), 1).astype(jnp.int32)
        out_BLnH = jax.nn.dot_product_attention(
            front(q_BLnH),
            front(k_BLkH),
            front(v_BLkH),
            is_causal=True,
            query_seq_lengths=lengths_B,
            key_value_seq_lengths=lengths_B,
            local_window_size=local,
            implementation="cudnn",
        )
        back_BL = jnp.argsort(order_BL, axis=1)
        return jnp.take_along_axis(out_BLnH, back_BL[:, :, None, None], axis=1)

    return attend


@functools.cache
def probe(kernel: str, dtype: str, window: int | None) -> str | None:
    """Why `kernel` cannot run on this process's GPU (None: a tiny forward and backward call
    of it compiled)."""
    call = cudnn_call(window) if kernel == "cudnn" else triton_call(interpret=False)
    q = jax.ShapeDtypeStruct((1, 128, 2, 64), jnp.dtype(dtype))
    kv = jax.ShapeDtypeStruct((1, 128, 1, 64), jnp.dtype(dtype))
    seg = jax.ShapeDtypeStruct((1, 128), jnp.int32)

    def loss(q, k, v, seg):
        return call(q, k, v, seg).astype(jnp.float32).sum()

    try:
        with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((), ())):
            jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(q, kv, kv, seg).compile()
    except Exception as e:  # noqa: BLE001 - any failure means: use the next kernel
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return None
