"""Llama-architecture GGUF files (llama.cpp) read through the `gguf` package.

The metadata becomes a ModelConfig; each tensor is dequantized to float32 when the loader asks
for it (the file stays memory-mapped), renamed to its HF key, and the Q/K rows are put back
into the HF rotate-half order: llama.cpp's converter (`convert_hf_to_gguf.py`, `LlamaModel.permute`)
interleaves the two halves of every head for its RoPE layout, `w.reshape(n_head, 2, rows // n_head
// 2, *rest).swapaxes(1, 2)`, with n_head = the query heads for Q and the kv heads for K.

The `gguf` reader gives arrays in numpy order, i.e. the reverse of GGUF's `ne` order, which is
the HF [out, in] layout; tests/test_gguf.py checks the result against transformers' own GGUF load.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from jax.sharding import Mesh

from sqjax.checkpoints.convert import load_from_tensors
from sqjax.errors import SqjaxError
from sqjax.models.config import ModelConfig, RopeScaling
from sqjax.models.decoder import Decoder
from sqjax.sharding import SAMPLE_RULES, Rules

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_LAYER_RE = re.compile(r"blk\.(\d+)\.(\w+)\.weight")


def open_reader(path: str | os.PathLike):
    """A gguf.GGUFReader over the file (memory-mapped), with bad files as SqjaxErrors."""
    import gguf

    if not Path(path).is_file():
        raise SqjaxError(f"{path}: GGUF file does not exist")
    try:
        return gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError, KeyError) as e:
        raise SqjaxError(f"{path}: not a readable GGUF file ({e}); re-download it") from None


def _field(reader, key: str, default: Any = None, *, source: str) -> Any:
    field = reader.get_field(key)
    if field is None:
        if default is None:
            raise SqjaxError(
                f"{source}: GGUF metadata lacks {key!r}; the file is not a complete llama GGUF"
            )
        return default
    return field.contents()


def gguf_config(reader, source: str, **overrides: Any) -> ModelConfig:
    """The ModelConfig described by a llama GGUF file's metadata."""
    arch = _field(reader, "general.architecture", source=source)
    if arch != "llama":
        raise SqjaxError(
            f"{source}: GGUF architecture {arch!r} is not supported; sqjax reads llama GGUF files"
        )

    def f(key: str, default: Any = None) -> Any:
        return _field(reader, f"llama.{key}", default, source=source)

    hidden, heads = int(f("embedding_length")), int(f("attention.head_count"))
    tokens = reader.get_field("tokenizer.ggml.tokens")  # the embedding rows it indexes
    names = {t.name for t in reader.tensors}
    kw = {
        "family": "llama",
        "vocab_size": len(tokens.data) if tokens is not None else int(f("vocab_size")),
        "hidden_size": hidden,
        "intermediate_size": int(f("feed_forward_length")),
        "num_layers": int(f("block_count")),
        "num_heads": heads,
        "num_kv_heads": int(f("attention.head_count_kv", heads)),
        "head_dim": int(f("attention.key_length", hidden // heads)),
        "rms_norm_eps": float(f("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(f("rope.freq_base", 10000.0)),
        "rope_scaling": _rope_scaling(f, names, source),
        "max_position_embeddings": int(f("context_length")),
        "tie_word_embeddings": "output.weight" not in names,
        "bos_token_id": _optional_int(reader, "tokenizer.ggml.bos_token_id", source),
        "eos_token_ids": _eos_ids(reader, source),
        "pad_token_id": _optional_int(reader, "tokenizer.ggml.padding_token_id", source),
    }
    return ModelConfig(**{**kw, **overrides})


def _rope_scaling(f: Callable[..., Any], names: set[str], source: str) -> RopeScaling:
    kind = f("rope.scaling.type", "none")
    if kind not in ("none", "linear"):
        raise SqjaxError(f"{source}: GGUF rope scaling {kind!r} is not supported (none, linear)")
    if "rope_freqs.weight" in names:
        raise SqjaxError(
            f"{source}: GGUF file has rope_freqs (Llama-3.1 rope scaling), which sqjax does not read"
        )
    if kind == "linear":
        return RopeScaling(kind="linear", factor=float(f("rope.scaling.factor")))
    return RopeScaling()


def _optional_int(reader, key: str, source: str) -> int | None:
    value = _field(reader, key, -1, source=source)
    return None if value == -1 else int(value)


def _eos_ids(reader, source: str) -> tuple[int, ...]:
    eos = _optional_int(reader, "tokenizer.ggml.eos_token_id", source)
    return () if eos is None else (eos,)


def hf_name(name: str, source: str) -> str:
    """The HF key of a llama GGUF tensor name."""
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    match = _LAYER_RE.fullmatch(name)
    if match is None or match.group(2) not in _LAYER_NAMES:
        raise SqjaxError(f"{source}: GGUF tensor {name!r} has no HF llama counterpart")
    return f"model.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.weight"


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverts llama.cpp's per-head Q/K row interleave (see the module docstring)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(
    reader, cfg: ModelConfig, source: str
) -> tuple[list[str], Callable[[str], np.ndarray]]:
    """(HF keys, read) for the file's tensors; read dequantizes one tensor to float32."""
    from gguf.quants import dequantize

    by_key = {hf_name(t.name, source): t for t in reader.tensors}

    def read(key: str) -> np.ndarray:
        t = by_key[key]
        try:
            w = np.asarray(dequantize(t.data, t.tensor_type), np.float32)
        except NotImplementedError as e:
            raise SqjaxError(
                f"{source}: tensor {t.name!r}: {e}; convert the file to another quantization"
            ) from None
        if key.endswith("q_proj.weight"):
            return unpermute_rows(w, cfg.num_heads)
        if key.endswith("k_proj.weight"):
            return unpermute_rows(w, cfg.num_kv_heads)
        return w

    return sorted(by_key), read


def load_gguf(
    path: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    rules: Rules = SAMPLE_RULES,
    per_layer: bool = False,
    **overrides: Any,
) -> Decoder:
    """A Decoder with the dequantized weights of a llama GGUF file."""
    reader = open_reader(path)
    cfg = gguf_config(reader, str(path), **overrides)
    keys, read = gguf_tensors(reader, cfg, str(path))
    return load_from_tensors(
        cfg, keys, read, mesh=mesh, rules=rules, source=str(path), per_layer=per_layer
    )


def load_gguf_tokenizer(path: str | os.PathLike):
    """The tokenizer (with chat template) embedded in a GGUF file, as transformers reads it."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_file():
        raise SqjaxError(f"{path}: GGUF file does not exist")
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
