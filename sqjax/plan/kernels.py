"""Analytic FLOPs and bytes of the Pallas attention kernels in a compiled TPU program.

XLA's cost analysis counts nothing inside a `custom-call` to `tpu_custom_call` (a Pallas
kernel lowered by Mosaic), and sqjax/plan/hlo.py sees only its operands and results. Each
splash attention call (sqjax/models/splash.py) gets its figures here, from what the
optimized HLO says of it:

- the kernel: its instruction name or op_name, splash_mha_fwd, splash_mha_dq or
  splash_mha_dkv (its `fused` variant when the dkv call also returns dq);
- q [B, n, L, H], k and v [B, k, L, H]: its first three rank-4 operands (rows vmapped into
  B, one shard's query heads n and kv heads k); where a device holds one row XLA squeezes
  B away, and they are its first three rank-3 operands wider than int8;
- its block sizes: the `xprof_metadata` in its frontend attributes (block_q, block_kv; _dq
  and _dkv for the backward kernels), else sqjax's default (ModelConfig.attention_block);
- the (query block, key block) pairs it runs per row and head: splash shrinks its grid to
  the non-empty blocks of the mask, and its mask-info operands are int8 [1, rows, width]
  (fwd, dq: a row per query block, as wide as the widest row; dkv: transposed). sqjax's
  masks are causal, or causal within a window, so row i runs min(i + 1, width) blocks: exact
  for causal, and for a window up to one block per row where the window is not
  block-aligned.

FLOPs: 2 x bq x bkv x H per matmul per block pair, row and head. Forward: 2 matmuls (Q K^T,
P V); dq: 3 (Q K^T recomputed, dO V^T, dS K); dkv: 4 (Q K^T, P^T dO, dO V^T, dS^T Q), 5 fused
(+ dS K). Splash's backward is then 3.5 x its forward (2.5 x fused, flash attention's usual
count). Each partial (diagonal) block counts in full, as the kernel computes it.

Bytes: every operand and result once, plus the re-reads of the streamed side: the forward
and dq kernels read a kv head's K and V blocks again for each of its query heads and block
pairs; dkv reads Q, dO and the per-row statistics again for each block pair. These replace
hlo.py's operands-plus-result count of the call, so nothing is counted twice.
"""

from __future__ import annotations

import dataclasses
import math
import re

DEFAULT_BLOCK = 512  # sqjax.models.config.ModelConfig.attention_block
_SPLASH = re.compile(r"splash_mha_(fwd|dq|dkv)")
_BLOCK = re.compile(r'\\?"(block_\w+)\\?": (\d+)')
_MATMULS = {"fwd": 2, "dq": 3, "dkv": 4, "dkv_fused": 5}

Array = tuple[tuple[int, ...], int]  # (dims, bytes)


@dataclasses.dataclass(frozen=True)
class KernelCost:
    kernel: str  # "splash_mha_fwd", "splash_mha_dq", "splash_mha_dkv" or "splash_mha_dkv_fused"
    flops: float
    bytes: float


def family(name: str, attrs: str) -> str:
    """The kernel family of a tpu_custom_call: "splash", or its instruction name."""
    if _SPLASH.search(name) or _SPLASH.search(attrs):
        return "splash"
    return re.sub(r"(\.\d+|\.clone)+$", "", name)


def cost(name: str, attrs: str, operands: list[Array], results: list[Array]) -> KernelCost | None:
    """FLOPs and bytes of a splash call; None for another kernel, or one whose operands do
    not read as q, k, v."""
    m = _SPLASH.search(name) or _SPLASH.search(attrs)
    rank = 4 if any(len(dims) == 4 for dims, _ in operands) else 3  # 3: one row, B squeezed
    arrays = [i for i, (dims, b) in enumerate(operands) if _per_head(dims, b, rank)]
    if m is None or len(arrays) < 3:
        return None
    kind = m.group(1)
    iq, ik, iv = arrays[:3]
    B, n, L, H = (1,) * (4 - rank) + operands[iq][0]
    kv_heads = operands[ik][0][-3]
    suffix = "" if kind == "fwd" else f"_{kind}"
    blocks = dict(_BLOCK.findall(attrs))
    bq = min(int(blocks.get(f"block_q{suffix}", DEFAULT_BLOCK)), L)
    bkv = min(int(blocks.get(f"block_kv{suffix}", DEFAULT_BLOCK)), L)
    if kind == "dkv" and sum(_per_head(d, b, rank) for d, b in results) > 2:
        kind = "dkv_fused"
    pairs = _block_pairs(operands[:iq], kind, L // bq, L // bkv)
    flops = _MATMULS[kind] * 2.0 * bq * bkv * H * pairs * B * n
    nbytes = sum(b for _, b in operands) + sum(b for _, b in results)
    if kind in ("fwd", "dq"):  # K and V: per query head and block pair
        again = n / kv_heads * pairs / (L // bkv) - 1
        nbytes += again * (operands[ik][1] + operands[iv][1])
    else:  # Q, dO and the row statistics: per block pair
        again = pairs / (L // bq) - 1
        nbytes += again * sum(operands[i][1] for i in arrays if i not in (ik, iv))
    return KernelCost(f"splash_mha_{kind}", flops, nbytes)


def _per_head(dims: tuple[int, ...], nbytes: int, rank: int) -> bool:
    """Whether an array is per row and head ([B, heads, L, ..]; B squeezed at rank 3): the
    int8 mask-info arrays, also rank 3, are not."""
    return len(dims) == rank and (rank == 4 or nbytes >= 2 * math.prod(dims))


def _block_pairs(mask_info: list[Array], kind: str, q_blocks: int, kv_blocks: int) -> int:
    """Block pairs run per row and head: causal, or as wide as the mask-info arrays say."""
    dims = next((d for d, _ in mask_info if len(d) == 3), None)
    if dims is None:
        rows, width = q_blocks, min(q_blocks, kv_blocks)
    elif kind.startswith("dkv"):
        rows, width = dims[2], dims[1]
    else:
        rows, width = dims[1], dims[2]
    return sum(min(i + 1, width) for i in range(rows))


def causal_fraction(length: int, block: int = DEFAULT_BLOCK, window: int | None = None) -> float:
    """The share of a [length, length] score matrix a causal (or windowed) splash call runs."""
    nb = math.ceil(length / block)
    width = nb if window is None else min(nb, math.ceil((window - 1) / block) + 1)
    return sum(min(i + 1, width) for i in range(nb)) / nb**2
