"""The decoder config: one frozen dataclass for every supported family.

Dimension alphabet used across sqjax (STYLE.md rule 1):
  B batch, L length, S cache length, D model, N query heads, K kv heads,
  G query heads per kv head, H head dim, F ffn, V vocab, C score labels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqjax.errors import SqjaxError

FAMILIES = ("llama", "mistral", "qwen2", "internlm2")
HEADS = ("lm", "score")
DTYPES = ("float32", "bfloat16", "float16")
ROPE_KINDS = ("default", "linear", "llama3", "dynamic")
ATTENTION = ("auto", "splash", "cudnn", "triton", "xla")  # sqjax.models.kernels


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling as in HF `rope_parameters` / `rope_scaling`.

    `dynamic` (NTK) equals `default` up to max_position_embeddings; longer inputs are
    refused by the model rather than silently computed differently from HF.
    """

    kind: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192

    def __post_init__(self):
        if self.kind not in ROPE_KINDS:
            raise SqjaxError(
                f"rope scaling type {self.kind!r} is not supported; supported: {', '.join(ROPE_KINDS)}"
            )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of one decoder-only transformer, plus its head and dtypes."""

    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling = RopeScaling()
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    sliding_window: int | None = None
    max_window_layers: int = 0  # layers with index >= this use the sliding window
    head: str = "lm"  # "lm": next-token logits; "score": scalar head at the last real token
    num_labels: int = 1
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    reward_token_id: int | None = None  # InternLM2 reward models end a chat with it
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    # self-attention kernel of calls without a cache (sqjax.models.kernels: auto, splash,
    # cudnn, triton, xla) and splash's block size (queries and keys per block)
    attention: str = "auto"
    attention_block: int = 512

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise SqjaxError(f"family={self.family!r} is not supported; use one of {FAMILIES}")
        if self.head not in HEADS:
            raise SqjaxError(f"head={self.head!r} is not supported; use one of {HEADS}")
        for key in ("dtype", "param_dtype"):
            if getattr(self, key) not in DTYPES:
                raise SqjaxError(
                    f"{key}={getattr(self, key)!r} is not a known dtype; use one of {', '.join(DTYPES)}"
                )
        if self.num_heads % self.num_kv_heads:
            raise SqjaxError(
                f"num_heads={self.num_heads} is not divisible by num_kv_heads={self.num_kv_heads}"
            )
        check_attention(self.attention)
        if self.attention_block < 128 or self.attention_block % 128:
            raise SqjaxError(
                f"attention_block={self.attention_block} must be a positive multiple of 128 "
                "(the kernels' lane width)"
            )
        if self.head_dim % 2:
            raise SqjaxError(f"head_dim={self.head_dim} must be even for RoPE")

    @property
    def group_size(self) -> int:
        return self.num_heads // self.num_kv_heads

    def layer_window(self, layer: int) -> int | None:
        """The sliding window of one layer, or None for full attention."""
        if self.sliding_window is None or layer < self.max_window_layers:
            return None
        return self.sliding_window

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def attention_settings(kernel: str | None, block: int | None) -> dict[str, Any]:
    """ModelConfig changes that set the attention kernel and block (None: leave it)."""
    out: dict[str, Any] = {}
    if kernel is not None:
        out["attention"] = kernel
    if block is not None:
        out["attention_block"] = block
    return out


def check_attention(name: str) -> None:
    """SqjaxError unless `name` is an attention kernel (sqjax.models.kernels)."""
    if name not in ATTENTION:
        raise SqjaxError(
            f"attention={name!r} is not a known attention kernel; use one of {', '.join(ATTENTION)}"
        )


def parse_dtype(name: str):
    """Maps a dtype name to a jnp dtype, with an actionable error."""
    import jax.numpy as jnp

    if name not in DTYPES:
        raise SqjaxError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return getattr(jnp, name)
