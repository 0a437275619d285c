"""Declarative HF <-> sqjax weight tables, one per family.

Each entry maps one HF tensor to one or more sqjax parameters (InternLM2 fuses q, k and v
into one `wqkv` tensor) with a pair of pure numpy transforms, so loading and exporting
read the same table and every key is accounted for in both directions.

HF linear weights are [out, in]; sqjax kernels are [in, ...out] (see decoder.py). Decoder
layers are stacked: an entry with a `layer` fills (or reads) that index of the leading
`layers` axis of its `blocks` parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from sqjax.models.config import ModelConfig

Path = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Entry:
    hf_key: str
    paths: tuple[Path, ...]
    to_sqjax: Callable[[np.ndarray, ModelConfig], tuple[np.ndarray, ...]]
    to_hf: Callable[[tuple[np.ndarray, ...], ModelConfig], np.ndarray]
    layer: int | None = None  # index on the stacked parameters' leading `layers` axis


def _same(w, cfg):
    return (w,)


def _same_back(ws, cfg):
    return ws[0]


def _t(w, cfg):
    return (w.T,)


def _t_back(ws, cfg):
    return ws[0].T


def _heads_in(n_attr: str):
    """[n*H, D] -> [D, n, H] and back."""

    def fwd(w, cfg):
        return (w.T.reshape(cfg.hidden_size, getattr(cfg, n_attr), cfg.head_dim),)

    def back(ws, cfg):
        return ws[0].reshape(cfg.hidden_size, -1).T

    return fwd, back


def _bias_heads(n_attr: str):
    def fwd(w, cfg):
        return (w.reshape(getattr(cfg, n_attr), cfg.head_dim),)

    def back(ws, cfg):
        return ws[0].reshape(-1)

    return fwd, back


def _o_fwd(w, cfg):
    return (w.T.reshape(cfg.num_heads, cfg.head_dim, cfg.hidden_size),)


def _o_back(ws, cfg):
    return ws[0].reshape(-1, cfg.hidden_size).T


def _wqkv_fwd(w, cfg):
    """InternLM2 `wqkv` [K*(G+2)*H, D]: per kv head, its G query heads, then k, then v.

    Verified against InternLM2's modeling code (`rearrange(qkv, "b q (h gs d) -> b q h gs d",
    gs=2 + num_key_value_groups)`, q = [..., :G, :], k = [..., -2, :], v = [..., -1, :]) and by
    tests/test_models_internlm2.py, which fuses a Llama checkpoint this way and gets its logits.
    """
    K, G, H, D = cfg.num_kv_heads, cfg.group_size, cfg.head_dim, cfg.hidden_size
    w_KgHD = w.reshape(K, G + 2, H, D)
    q_DNH = w_KgHD[:, :G].reshape(K * G, H, D).transpose(2, 0, 1)
    k_DKH = w_KgHD[:, G].transpose(2, 0, 1)
    v_DKH = w_KgHD[:, G + 1].transpose(2, 0, 1)
    return q_DNH, k_DKH, v_DKH


def _wqkv_back(ws, cfg):
    q_DNH, k_DKH, v_DKH = ws
    K, G, H, D = cfg.num_kv_heads, cfg.group_size, cfg.head_dim, cfg.hidden_size
    q_KGHD = q_DNH.transpose(1, 2, 0).reshape(K, G, H, D)
    k_K1HD = k_DKH.transpose(1, 2, 0)[:, None]
    v_K1HD = v_DKH.transpose(1, 2, 0)[:, None]
    return np.concatenate([q_KGHD, k_K1HD, v_K1HD], axis=1).reshape(-1, D)


def _bqkv_fwd(b, cfg):
    K, G, H = cfg.num_kv_heads, cfg.group_size, cfg.head_dim
    b_KgH = b.reshape(K, G + 2, H)
    return b_KgH[:, :G].reshape(K * G, H), b_KgH[:, G], b_KgH[:, G + 1]


def _bqkv_back(ws, cfg):
    q_NH, k_KH, v_KH = ws
    K, G, H = cfg.num_kv_heads, cfg.group_size, cfg.head_dim
    return np.concatenate([q_NH.reshape(K, G, H), k_KH[:, None], v_KH[:, None]], axis=1).reshape(-1)


def _layer(*names: str) -> tuple[Path, ...]:
    return tuple(("blocks",) + tuple(n.split(".")) for n in names)


def _hf_names(cfg: ModelConfig) -> dict[str, str]:
    if cfg.family == "internlm2":
        return {
            "embed": "model.tok_embeddings.weight",
            "norm": "model.norm.weight",
            "lm_head": "output.weight",
            "score": "v_head.weight",
            "layer": "model.layers.{i}.",
            "attn_norm": "attention_norm.weight",
            "mlp_norm": "ffn_norm.weight",
            "o": "attention.wo",
            "gate": "feed_forward.w1",
            "up": "feed_forward.w3",
            "down": "feed_forward.w2",
        }
    return {
        "embed": "model.embed_tokens.weight",
        "norm": "model.norm.weight",
        "lm_head": "lm_head.weight",
        "score": "score.weight",
        "layer": "model.layers.{i}.",
        "attn_norm": "input_layernorm.weight",
        "mlp_norm": "post_attention_layernorm.weight",
        "o": "self_attn.o_proj",
        "gate": "mlp.gate_proj",
        "up": "mlp.up_proj",
        "down": "mlp.down_proj",
    }


def weight_map(cfg: ModelConfig) -> list[Entry]:
    """Every HF tensor of a checkpoint of this config, with its sqjax parameter(s)."""
    n = _hf_names(cfg)
    entries = [
        Entry(n["embed"], (("embed",),), _same, _same_back),
        Entry(n["norm"], (("final_norm", "weight"),), _same, _same_back),
    ]
    if cfg.head == "score":
        entries.append(Entry(n["score"], (("score_head",),), _t, _t_back))
    elif not cfg.tie_word_embeddings:
        entries.append(Entry(n["lm_head"], (("lm_head",),), _t, _t_back))
    for i in range(cfg.num_layers):
        p = n["layer"].format(i=i)
        layer = [
            Entry(p + n["attn_norm"], _layer("attn_norm.weight"), _same, _same_back),
            Entry(p + n["mlp_norm"], _layer("mlp_norm.weight"), _same, _same_back),
            Entry(p + n["o"] + ".weight", _layer("attn.o"), _o_fwd, _o_back),
            Entry(p + n["gate"] + ".weight", _layer("mlp.gate"), _t, _t_back),
            Entry(p + n["up"] + ".weight", _layer("mlp.up"), _t, _t_back),
            Entry(p + n["down"] + ".weight", _layer("mlp.down"), _t, _t_back),
        ]
        if cfg.o_bias:
            layer.append(Entry(p + n["o"] + ".bias", _layer("attn.o_bias"), _same, _same_back))
        layer += _qkv_entries(cfg, p)
        entries += [dataclasses.replace(e, layer=i) for e in layer]
    return entries


def _qkv_entries(cfg: ModelConfig, p: str) -> list[Entry]:
    if cfg.family == "internlm2":
        out = [
            Entry(
                p + "attention.wqkv.weight",
                _layer("attn.q", "attn.k", "attn.v"),
                _wqkv_fwd,
                _wqkv_back,
            )
        ]
        if cfg.qkv_bias:
            out.append(
                Entry(
                    p + "attention.wqkv.bias",
                    _layer("attn.q_bias", "attn.k_bias", "attn.v_bias"),
                    _bqkv_fwd,
                    _bqkv_back,
                )
            )
        return out
    out = []
    for name, heads in (("q", "num_heads"), ("k", "num_kv_heads"), ("v", "num_kv_heads")):
        out.append(
            Entry(f"{p}self_attn.{name}_proj.weight", _layer(f"attn.{name}"), *_heads_in(heads))
        )
        if cfg.qkv_bias:
            out.append(
                Entry(
                    f"{p}self_attn.{name}_proj.bias",
                    _layer(f"attn.{name}_bias"),
                    *_bias_heads(heads),
                )
            )
    return out
