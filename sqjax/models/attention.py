"""Blockwise (flash-style) grouped-query attention: the same result and gradients as the
decoder's `_gqa` without float32 logits over the whole sequence.

Queries go `q_chunk` at a time and, within a query block, keys go `k_chunk` at a time with an
online softmax (a running max and sum, Milakov & Gimelshein 2018). The backward pass is
FlashAttention's (Dao et al. 2022; Dao 2023): the forward saves only its output and each
query's softmax max and sum, and the backward recomputes each block's probabilities from them,
so no pass stores probabilities or differentiates through the mask. Blocks the mask hides
for every row (above the causal diagonal, between packed segments) are skipped both ways.
The largest float32 block is [B, K, G * q_chunk, k_chunk]: for a 7B Qwen2 at 4,096 tokens
the whole-sequence logits are 3.5 GiB per layer, a 512 x 512 block's 56 MiB.

Masked keys get the same finite NEG_INF logit as in `_gqa`, so a query with no visible key
(padding) averages all values as `_gqa` does; those rows are computed apart (the mean of the
values) and the blocks give the rest. On TPU the Pallas splash-attention kernel that ships
with JAX is the faster route; this is the XLA path, the reference and the CPU fallback.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

NEG_INF = -0.7 * float(jnp.finfo(jnp.float32).max)  # masked logits (finite: see above)


def chunked_gqa(
    q_BLNH: jax.Array,
    k_BKHS: jax.Array,
    v_BKSH: jax.Array,
    mask_BLS: jax.Array,
    *,
    q_chunk: int = 512,
    k_chunk: int = 512,
) -> jax.Array:
    """`_gqa(q_BLNH, k_BKHS, v_BKSH, mask_BLS)` computed a block at a time: [B, L, N, H]."""
    B, L, N, H = q_BLNH.shape
    K = k_BKHS.shape[1]
    out_BLNH = _flash(
        q_BLNH, k_BKHS, v_BKSH, mask_BLS, min(q_chunk, L), min(k_chunk, k_BKHS.shape[3])
    )
    # a query that sees no key: softmax over S equal NEG_INF logits, the mean of the values
    mean_BKH = v_BKSH.astype(jnp.float32).mean(axis=2).astype(out_BLNH.dtype)
    mean_BNH = jnp.broadcast_to(mean_BKH[:, :, None], (B, K, N // K, H)).reshape(B, 1, N, H)
    sees_BL = mask_BLS.any(axis=-1)
    return jnp.where(sees_BL[:, :, None, None], out_BLNH, mean_BNH)


class _Blocks:
    """The operands split into blocks: queries [n, B, K, G * C, H] (grouped heads and the
    block's queries on one M axis, pre-scaled by 1/sqrt(H)), keys [m, B, K, H, c], values
    [m, B, K, c, H], the mask [n, m, B, C, c] and which blocks any row sees, [n, m]."""

    def __init__(self, q_BLNH, k_BKHS, v_BKSH, mask_BLS, C: int, c: int):
        B, L, N, H = q_BLNH.shape
        K, S = k_BKHS.shape[1], k_BKHS.shape[3]
        self.shape = (B, L, N, H, K, S, C, c)
        n, m = -(-L // C), -(-S // c)
        self.scale = H**-0.5
        q_BLNH = jnp.pad(q_BLNH, ((0, 0), (0, n * C - L), (0, 0), (0, 0)))
        q_nBKGCH = q_BLNH.reshape(B, n, C, K, N // K, H).transpose(1, 0, 3, 4, 2, 5)
        self.q = q_nBKGCH.reshape(n, B, K, -1, H) * jnp.asarray(self.scale, q_BLNH.dtype)
        k_BKHS = jnp.pad(k_BKHS, ((0, 0), (0, 0), (0, 0), (0, m * c - S)))
        self.k = k_BKHS.reshape(B, K, H, m, c).transpose(3, 0, 1, 2, 4)
        v_BKSH = jnp.pad(v_BKSH, ((0, 0), (0, 0), (0, m * c - S), (0, 0)))
        self.v = v_BKSH.reshape(B, K, m, c, H).transpose(2, 0, 1, 3, 4)
        mask_BLS = jnp.pad(mask_BLS, ((0, 0), (0, n * C - L), (0, m * c - S)))  # pads: hidden
        self.mask = mask_BLS.reshape(B, n, C, m, c).transpose(1, 3, 0, 2, 4)
        self.seen = self.mask.any(axis=(2, 3, 4))

    def split_rows(self, x_BLNH):
        """[B, L, N, H] (output or its cotangent) -> the query blocks' [n, B, K, G * C, H]."""
        B, L, N, H, K, _, C, _ = self.shape
        n = self.q.shape[0]
        x_BLNH = jnp.pad(x_BLNH, ((0, 0), (0, n * C - L), (0, 0), (0, 0)))
        x_nBKGCH = x_BLNH.reshape(B, n, C, K, N // K, H).transpose(1, 0, 3, 4, 2, 5)
        return x_nBKGCH.reshape(n, B, K, -1, H)

    def join_rows(self, x_nBKMH):
        """The inverse of split_rows: [n, B, K, G * C, H] -> [B, L, N, H]."""
        B, L, N, H, K, _, C, _ = self.shape
        n = x_nBKMH.shape[0]
        x_nBKGCH = x_nBKMH.reshape(n, B, K, N // K, C, H)
        return x_nBKGCH.transpose(1, 0, 4, 2, 3, 5).reshape(B, n * C, N, H)[:, :L]

    def join_keys(self, dk_mBKHc, dv_mBKcH):
        """Key and value blocks back to [B, K, H, S] and [B, K, S, H]."""
        _, _, _, H, K, S, _, c = self.shape
        m, B = dk_mBKHc.shape[:2]
        dk_BKHS = dk_mBKHc.transpose(1, 2, 3, 0, 4).reshape(B, K, H, m * c)[..., :S]
        dv_BKSH = dv_mBKcH.transpose(1, 2, 0, 3, 4).reshape(B, K, m * c, H)[:, :, :S]
        return dk_BKHS, dv_BKSH


def _logits(q_BKMH, k_BKHc, mask_BCc):
    """A block's float32 logits [B, K, M, c], NEG_INF where the mask hides the key."""
    logits_BKMc = jnp.einsum("BKMH,BKHc->BKMc", q_BKMH, k_BKHc, preferred_element_type=jnp.float32)
    B, K, M, c = logits_BKMc.shape
    C = mask_BCc.shape[1]
    logits_BKGCc = logits_BKMc.reshape(B, K, M // C, C, c)
    return jnp.where(mask_BCc[:, None, None], logits_BKGCc, NEG_INF).reshape(B, K, M, c)


def _keep(carry, *_):
    """A skipped block: the carry as it was."""
    return carry


def _forward_rows(q_BKMH, k_mBKHc, v_mBKcH, mask_mBCc, seen_m):
    """One query block against every key block: (output [B, K, M, H] in float32, the rows'
    softmax max and sum [B, K, M])."""
    B, K, M, H = q_BKMH.shape

    def visit(carry, k_BKHc, v_BKcH, mask_BCc):
        max_BKM, sum_BKM, acc_BKMH = carry
        logits_BKMc = _logits(q_BKMH, k_BKHc, mask_BCc)
        new_max_BKM = jnp.maximum(max_BKM, logits_BKMc.max(axis=-1))
        rescale_BKM = jnp.exp(max_BKM - new_max_BKM)
        p_BKMc = jnp.exp(logits_BKMc - new_max_BKM[..., None])
        pv_BKMH = jnp.einsum(
            "BKMc,BKcH->BKMH",
            p_BKMc.astype(v_BKcH.dtype),
            v_BKcH,
            preferred_element_type=jnp.float32,
        )
        sum_BKM = sum_BKM * rescale_BKM + p_BKMc.sum(axis=-1)
        return new_max_BKM, sum_BKM, acc_BKMH * rescale_BKM[..., None] + pv_BKMH

    def step(carry, block):
        k_BKHc, v_BKcH, mask_BCc, seen = block
        return jax.lax.cond(seen, visit, _keep, carry, k_BKHc, v_BKcH, mask_BCc), None

    init = (
        jnp.full((B, K, M), -jnp.inf, jnp.float32),
        jnp.zeros((B, K, M), jnp.float32),
        jnp.zeros((B, K, M, H), jnp.float32),
    )
    (max_BKM, sum_BKM, acc_BKMH), _ = jax.lax.scan(
        step, init, (k_mBKHc, v_mBKcH, mask_mBCc, seen_m)
    )
    # a block row that sees nothing has sum 0: its output is replaced by the values' mean
    return acc_BKMH / jnp.where(sum_BKM > 0, sum_BKM, 1.0)[..., None], max_BKM, sum_BKM


def _backward_rows(
    q_BKMH, do_BKMH, out_BKMH, max_BKM, sum_BKM, k_mBKHc, v_mBKcH, mask_mBCc, seen_m
):
    """One query block's gradients: dq [B, K, M, H] (of the pre-scaled queries) and its share
    of every key block's dk [m, B, K, H, c] and dv [m, B, K, c, H]."""
    dt = q_BKMH.dtype
    delta_BKM = jnp.sum(do_BKMH.astype(jnp.float32) * out_BKMH.astype(jnp.float32), axis=-1)

    def visit(dq_BKMH, k_BKHc, v_BKcH, mask_BCc):
        logits_BKMc = _logits(q_BKMH, k_BKHc, mask_BCc)
        p_BKMc = jnp.exp(logits_BKMc - max_BKM[..., None]) / sum_BKM[..., None]
        dv_BKcH = jnp.einsum("BKMc,BKMH->BKcH", p_BKMc.astype(dt), do_BKMH)
        dp_BKMc = jnp.einsum("BKMH,BKcH->BKMc", do_BKMH, v_BKcH, preferred_element_type=jnp.float32)
        ds_BKMc = (p_BKMc * (dp_BKMc - delta_BKM[..., None])).astype(dt)
        dq_BKMH = dq_BKMH + jnp.einsum(
            "BKMc,BKHc->BKMH", ds_BKMc, k_BKHc, preferred_element_type=jnp.float32
        )
        dk_BKHc = jnp.einsum("BKMH,BKMc->BKHc", q_BKMH, ds_BKMc)
        return dq_BKMH, (dk_BKHc, dv_BKcH)

    def skip(dq_BKMH, k_BKHc, v_BKcH, mask_BCc):
        B, K, _, H = q_BKMH.shape
        c = k_BKHc.shape[-1]
        return dq_BKMH, (jnp.zeros((B, K, H, c), dt), jnp.zeros((B, K, c, H), dt))

    def step(dq_BKMH, block):
        k_BKHc, v_BKcH, mask_BCc, seen = block
        return jax.lax.cond(seen, visit, skip, dq_BKMH, k_BKHc, v_BKcH, mask_BCc)

    dq0_BKMH = jnp.zeros(q_BKMH.shape, jnp.float32)
    dq_BKMH, (dk_mBKHc, dv_mBKcH) = jax.lax.scan(
        step, dq0_BKMH, (k_mBKHc, v_mBKcH, mask_mBCc, seen_m)
    )
    return dq_BKMH.astype(dt), dk_mBKHc, dv_mBKcH


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _flash(q_BLNH, k_BKHS, v_BKSH, mask_BLS, C: int, c: int):
    """Blockwise attention [B, L, N, H] with the recomputing backward; a query that sees no
    key gets a finite stand-in (chunked_gqa replaces it, so its cotangent is zero)."""
    return _flash_forward(q_BLNH, k_BKHS, v_BKSH, mask_BLS, C, c)[0]


def _flash_forward(q_BLNH, k_BKHS, v_BKSH, mask_BLS, C: int, c: int):
    blocks = _Blocks(q_BLNH, k_BKHS, v_BKSH, mask_BLS, C, c)

    def rows(_, xs):
        q_BKMH, mask_mBCc, seen_m = xs
        return None, _forward_rows(q_BKMH, blocks.k, blocks.v, mask_mBCc, seen_m)

    _, (out_nBKMH, max_nBKM, sum_nBKM) = jax.lax.scan(
        rows, None, (blocks.q, blocks.mask, blocks.seen)
    )
    out_BLNH = blocks.join_rows(out_nBKMH).astype(q_BLNH.dtype)
    return out_BLNH, (q_BLNH, k_BKHS, v_BKSH, mask_BLS, out_BLNH, max_nBKM, sum_nBKM)


def _flash_backward(C: int, c: int, residuals, dout_BLNH):
    q_BLNH, k_BKHS, v_BKSH, mask_BLS, out_BLNH, max_nBKM, sum_nBKM = residuals
    blocks = _Blocks(q_BLNH, k_BKHS, v_BKSH, mask_BLS, C, c)
    do_nBKMH = blocks.split_rows(dout_BLNH.astype(q_BLNH.dtype))
    out_nBKMH = blocks.split_rows(out_BLNH)

    def rows(dkv, xs):
        q_BKMH, do_BKMH, out_BKMH, max_BKM, sum_BKM, mask_mBCc, seen_m = xs
        dq_BKMH, dk_mBKHc, dv_mBKcH = _backward_rows(
            q_BKMH, do_BKMH, out_BKMH, max_BKM, sum_BKM, blocks.k, blocks.v, mask_mBCc, seen_m
        )
        return (dkv[0] + dk_mBKHc, dkv[1] + dv_mBKcH), dq_BKMH

    dkv0 = (jnp.zeros(blocks.k.shape, q_BLNH.dtype), jnp.zeros(blocks.v.shape, q_BLNH.dtype))
    xs = (blocks.q, do_nBKMH, out_nBKMH, max_nBKM, sum_nBKM, blocks.mask, blocks.seen)
    (dk_mBKHc, dv_mBKcH), dq_nBKMH = jax.lax.scan(rows, dkv0, xs)
    dq_BLNH = blocks.join_rows(dq_nBKMH) * jnp.asarray(blocks.scale, q_BLNH.dtype)
    dk_BKHS, dv_BKSH = blocks.join_keys(dk_mBKHc, dv_mBKcH)
    return dq_BLNH, dk_BKHS.astype(k_BKHS.dtype), dv_BKSH.astype(v_BKSH.dtype), None


_flash.defvjp(_flash_forward, _flash_backward)
