"""Which attention kernel a program's self-attention runs, and running it over the mesh.

A decoder call without a KV cache (training, reference log-probs, reward and judge scoring,
the sampler's prefill) attends its own L tokens. `ModelConfig.attention` picks how:

- `splash`: jax's Pallas splash-attention kernel (TPU; on CPU in interpret mode, for tests);
- `cudnn`: cuDNN flash attention through `jax.nn.dot_product_attention` (GPU, bf16/fp16,
  rows without packing: cuDNN takes no segment ids here);
- `triton`: jax's Pallas-Triton flash attention with segment ids (GPU; on CPU in interpret
  mode), packed rows included, no sliding window;
- `xla`: sqjax's own XLA attention (`_gqa` up to 512 queries, `chunked_gqa` above);
- `auto`: splash on TPU; on GPU cuDNN for unpacked rows, Triton for packed ones, each only
  where a probe compile of it works; xla on CPU.

A kernel that cannot run a call (cuDNN for packed rows, Triton with a sliding window, a GPU
kernel whose probe compile fails, splash for 16-bit TPU inputs at a float32-like
`jax_default_matmul_precision`) falls back to the next one with one log line, never
silently; a kernel asked for on a platform it does not exist on is a SqjaxError. Calls
shorter than MIN_LENGTH tokens use `_gqa` (below a kernel's smallest block).

The kernels see rows as segments: a token's segment is its packed segment id (1 for an
unpacked row) and padding is a segment of its own (PAD), so padding never reaches a real
token and every query sees at least itself. Causality is by index, which equals sqjax's
position rule (sqjax.models.cache.attention_mask) wherever positions count up by one within
a segment: packed rows, left or right padding. Outputs at padding positions differ from
`_gqa`'s (which averages every value there); nothing reads them.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from sqjax.errors import SqjaxError
from sqjax.models.config import ModelConfig, check_attention

PLATFORMS = {"splash": ("tpu", "cpu"), "cudnn": ("gpu",), "triton": ("gpu", "cpu")}
MIN_LENGTH = 128  # shorter calls attend with two plain matmuls (_gqa)
LANES = 128  # kernel lengths are padded to a multiple of this (and of the block)
PAD = -1  # the segment id of padding
NO_WINDOW = 2**30  # the traced window of a full-attention layer in a model with windows

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Choice:
    """The kernel one call runs, and why it is not the one asked for (None: it is)."""

    kernel: str
    fallback: str | None = None


def platform() -> str:
    """The platform the program being traced compiles for: its mesh's devices (the train
    step and the sampler trace under their mesh; `sqjax plan` under a TPU slice's), else
    this process's default backend."""
    mesh = jax.sharding.get_abstract_mesh()
    device = None if mesh.empty else mesh.abstract_device
    return device.platform if device is not None else jax.default_backend()


def choose(
    requested: str, where: str, *, packed: bool, window: int | None, dtype, length: int
) -> Choice:
    """The kernel for one self-attention call of `length` tokens on platform `where`."""
    check_attention(requested)
    if length < MIN_LENGTH or requested == "xla" or (requested == "auto" and where == "cpu"):
        return Choice("xla")
    if requested == "auto":
        return _auto(where, packed=packed, window=window, dtype=dtype)
    if where not in PLATFORMS[requested]:
        raise SqjaxError(
            f"attention={requested} needs a {' or '.join(PLATFORMS[requested])} device, but this "
            f"program compiles for {where}; set the model's attention to auto or xla"
        )
    if requested == "splash":
        return _splash(where, dtype)
    if where == "cpu":  # triton in interpret mode
        why = _cannot("triton", packed=packed, window=window)
        return Choice("xla", f"triton: {why}") if why else Choice("triton")
    order = ("cudnn", "triton", "xla") if requested == "cudnn" else ("triton", "xla")
    return _gpu_choice(order, packed=packed, window=window, dtype=dtype)


def _auto(where: str, *, packed: bool, window: int | None, dtype) -> Choice:
    if where == "tpu":
        return _splash(where, dtype)
    if where == "gpu":
        order = ("triton", "xla") if packed else ("cudnn", "triton", "xla")
        return _gpu_choice(order, packed=packed, window=window, dtype=dtype)
    return Choice("xla")


FULL_PRECISION = ("high", "highest", "float32", "tensorfloat32", "bfloat16_3x")


def _splash(where: str, dtype) -> Choice:
    """Splash, unless Mosaic cannot compile it: it has no 16-bit dot at the float32-like
    matmul precisions (`jax_default_matmul_precision`), read here as at lowering."""
    precision = str(jax.config.jax_default_matmul_precision or "default").lower()
    if where == "tpu" and jnp.dtype(dtype).itemsize == 2 and precision in FULL_PRECISION:
        why = f"jax_default_matmul_precision={precision} has no {jnp.dtype(dtype).name} Mosaic dot"
        return Choice("xla", f"splash: {why}; leave it at default for splash")
    return Choice("splash")


def _gpu_choice(order: tuple[str, ...], *, packed: bool, window: int | None, dtype) -> Choice:
    """The first kernel of `order` that can run the call and whose probe compiles on this
    GPU (the reasons the earlier ones could not, as the fallback note)."""
    from sqjax.models import gpu_kernels

    reasons = []
    for kernel in order:
        if kernel == "xla":
            break
        why = _cannot(kernel, packed=packed, window=window)
        why = why or gpu_kernels.probe(kernel, jnp.dtype(dtype).name, window)
        if why is None:
            return Choice(kernel, "; ".join(reasons) or None)
        reasons.append(f"{kernel}: {why}")
    return Choice("xla", "; ".join(reasons) or None)


def _cannot(kernel: str, *, packed: bool, window: int | None) -> str | None:
    """Why `kernel` cannot express a call (None: it can)."""
    if kernel == "cudnn" and packed:
        return "no segment ids (packed rows)"
    if kernel == "triton" and window is not None:
        return f"no sliding window ({window} tokens)"
    return None


@dataclasses.dataclass(frozen=True)
class LayerKernels:
    """The kernels of one call shape, per distinct sliding window of the model's layers
    (None: full attention, or a window no shorter than the call)."""

    branches: tuple[tuple[int | None, Choice], ...]
    raw: tuple[tuple[int, int], ...] = ()  # (a layer's traced window value, its branch)

    def index(self, window: jax.Array) -> jax.Array:
        """The branch of a layer from its traced window (NO_WINDOW: full attention)."""
        index = jnp.int32(0)
        for value, branch in self.raw:
            index = jnp.where(window == value, branch, index)
        return index

    @property
    def name(self) -> str:
        """ "splash", or e.g. "splash+xla" when layers run different kernels."""
        return "+".join(sorted({choice.kernel for _, choice in self.branches}))


def layer_kernels(cfg: ModelConfig, length: int, packed: bool, dtype, where: str) -> LayerKernels:
    """What each layer of `cfg` runs for a self-attention call of `length` tokens."""
    windows = {cfg.layer_window(i) for i in range(cfg.num_layers)}
    effective = {w: None if w is None or w >= length else w for w in windows}
    order = sorted(set(effective.values()), key=lambda w: -1 if w is None else w)
    branches = tuple(
        (w, choose(cfg.attention, where, packed=packed, window=w, dtype=dtype, length=length))
        for w in order
    )
    raw = tuple((NO_WINDOW if w is None else w, order.index(e)) for w, e in effective.items())
    for _, choice in branches:
        _report(cfg.attention, where, choice)
    return LayerKernels(branches, raw)


def note(program: str, cfg: ModelConfig, length: int, packed: bool, mesh=None) -> str:
    """Records a call of `program` (sqjax.attention_log) with the kernels its layers run for
    `length` tokens on `mesh`'s platform; returns their name."""
    from sqjax import attention_log

    where = jax.default_backend() if mesh is None else mesh.devices.flat[0].platform
    name = layer_kernels(cfg, length, packed, cfg.dtype, where).name
    detail = f"{cfg.family}, {length} tokens, {where}"
    if name == "splash":
        detail += f", block {padded_length(length, cfg.attention_block)[1]}"
    attention_log.ran(program, name, detail)
    return name


_REPORTED: set = set()


def _report(requested: str, where: str, choice: Choice) -> None:
    """Logs each fallback once per process."""
    key = (requested, where, choice)
    if choice.fallback and key not in _REPORTED:
        _REPORTED.add(key)
        log.warning(
            "attention=%s on %s runs %s: %s", requested, where, choice.kernel, choice.fallback
        )


def segments(pos_BL: jax.Array, seg_BL: jax.Array | None) -> jax.Array:
    """The kernels' segment ids [B, L]: the packed segment (1 for an unpacked row), PAD on
    padding (position -1, or packed segment 0)."""
    if seg_BL is None:
        return jnp.where(pos_BL >= 0, 1, PAD).astype(jnp.int32)
    return jnp.where((pos_BL >= 0) & (seg_BL > 0), seg_BL, PAD).astype(jnp.int32)


def padded_length(length: int, block: int) -> tuple[int, int]:
    """(padded length, block) of a kernel call: the block is `block` or, for a shorter call,
    its length rounded up to LANES; the length is padded to a multiple of the block."""
    block = min(block, -(-length // LANES) * LANES)
    return -(-length // block) * block, block


def attend(
    kernel: str,
    q_BLNH: jax.Array,
    k_BLKH: jax.Array,
    v_BLKH: jax.Array,
    seg_BL: jax.Array,
    *,
    window: int | None,
    block: int,
) -> jax.Array:
    """Causal self-attention [B, L, N, H] by `kernel` within segments (sliding `window`
    tokens, or None), rows padded to the kernel's block, run per shard of the mesh."""
    from sqjax.models import gpu_kernels, splash

    L = q_BLNH.shape[1]
    Lp, block = padded_length(L, block)
    interpret = platform() == "cpu"
    if kernel == "splash":
        call = splash.call(Lp, window, block, interpret)
    elif kernel == "triton":
        call = gpu_kernels.triton_call(interpret)
    else:
        call = gpu_kernels.cudnn_call(window)
    pad = ((0, 0), (0, Lp - L), (0, 0), (0, 0))
    q, k, v = (jnp.pad(x, pad) for x in (q_BLNH, k_BLKH, v_BLKH))
    seg = jnp.pad(seg_BL, ((0, 0), (0, Lp - L)), constant_values=PAD)
    return _per_shard(call, q, k, v, seg)[:, :L]


def _per_shard(call, q_BLNH, k_BLKH, v_BLKH, seg_BL):
    """call(q, k, v, seg) under shard_map when traced under a mesh: rows over (data, fsdp),
    heads over tensor (when it divides both head counts; otherwise every device of a tensor
    group runs all heads), so each device runs the kernel on its own shard."""
    from sqjax.sharding import BATCH

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1 or not {*BATCH, "tensor"} <= set(mesh.axis_names):
        return call(q_BLNH, k_BLKH, v_BLKH, seg_BL)
    B, _, N, _ = q_BLNH.shape
    K, tensor = k_BLKH.shape[2], mesh.shape["tensor"]
    rows = BATCH if B % math.prod(mesh.shape[a] for a in BATCH) == 0 else None
    heads = "tensor" if tensor > 1 and N % tensor == 0 and K % tensor == 0 else None
    spec = PartitionSpec(rows, None, heads, None)
    specs = (spec, spec, spec, PartitionSpec(rows, None))
    sharded = jax.shard_map(call, mesh=mesh, in_specs=specs, out_specs=spec, check_vma=False)
    return sharded(q_BLNH, k_BLKH, v_BLKH, seg_BL)
