"""HF `config.json` <-> ModelConfig, for every family, raising on what cannot be mapped."""

from __future__ import annotations

from typing import Any

from sqjax.errors import SqjaxError
from sqjax.models.config import ModelConfig, RopeScaling

# HF architecture name -> (family, head)
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "LlamaForCausalLM": ("llama", "lm"),
    "LlamaForSequenceClassification": ("llama", "score"),
    "MistralForCausalLM": ("mistral", "lm"),
    "MistralForSequenceClassification": ("mistral", "score"),
    "Qwen2ForCausalLM": ("qwen2", "lm"),
    "Qwen2ForSequenceClassification": ("qwen2", "score"),
    "InternLM2ForCausalLM": ("internlm2", "lm"),
    "InternLM2ForRewardModel": ("internlm2", "score"),
}
MODEL_TYPES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "internlm2": "internlm2"}


def architecture_of(hf: dict[str, Any], source: str = "config.json") -> tuple[str, str]:
    archs = hf.get("architectures") or []
    for arch in archs:
        if arch in ARCHITECTURES:
            return ARCHITECTURES[arch]
    if not archs and hf.get("model_type") in MODEL_TYPES:
        return MODEL_TYPES[hf["model_type"]], "lm"
    raise SqjaxError(
        f"{source}: unsupported architectures={archs} (model_type={hf.get('model_type')!r}); "
        f"sqjax supports {', '.join(ARCHITECTURES)}"
    )


def _rope(hf: dict[str, Any], source: str) -> tuple[float, RopeScaling]:
    """Reads rope theta and scaling from transformers 4 (`rope_theta`, `rope_scaling`) or
    transformers 5 (`rope_parameters`) layouts."""
    params = dict(hf.get("rope_parameters") or {})
    scaling = dict(hf.get("rope_scaling") or {})
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    merged = {**scaling, **params}
    kind = merged.get("rope_type", merged.get("type", "default"))
    if kind not in ("default", "linear", "llama3", "dynamic"):
        raise SqjaxError(
            f"{source}: rope type {kind!r} is not supported (supported: default, linear, llama3, dynamic)"
        )
    return float(theta), RopeScaling(
        kind=kind,
        factor=float(merged.get("factor", 1.0)),
        low_freq_factor=float(merged.get("low_freq_factor", 1.0)),
        high_freq_factor=float(merged.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(
            merged.get("original_max_position_embeddings", RopeScaling.original_max_position_embeddings)
        ),
    )


def _refuse(hf: dict[str, Any], source: str) -> None:
    act = hf.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise SqjaxError(f"{source}: hidden_act={act!r} is not supported (only silu)")
    if hf.get("mlp_bias"):
        raise SqjaxError(f"{source}: mlp_bias=true is not supported")
    if hf.get("pretraining_tp", 1) not in (1, None):
        raise SqjaxError(f"{source}: pretraining_tp={hf['pretraining_tp']} is not supported; set it to 1")


def _eos(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (int(value),)


def from_hf_config(hf: dict[str, Any], source: str = "config.json", **overrides: Any) -> ModelConfig:
    """Builds a ModelConfig from a parsed HF config.json; raises on unsupported settings."""
    family, head = architecture_of(hf, source)
    _refuse(hf, source)
    theta, scaling = _rope(hf, source)
    try:
        num_heads = int(hf["num_attention_heads"])
        hidden = int(hf["hidden_size"])
        kw = {
            "family": family,
            "vocab_size": int(hf["vocab_size"]),
            "hidden_size": hidden,
            "intermediate_size": int(hf["intermediate_size"]),
            "num_layers": int(hf["num_hidden_layers"]),
            "num_heads": num_heads,
            "num_kv_heads": int(hf.get("num_key_value_heads") or num_heads),
            "head_dim": int(hf.get("head_dim") or hidden // num_heads),
        }
    except KeyError as e:
        raise SqjaxError(f"{source}: missing key {e.args[0]!r}") from None
    kw.update(
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        rope_theta=theta,
        rope_scaling=scaling,
        max_position_embeddings=int(hf.get("max_position_embeddings", 4096)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        head=head,
        num_labels=int(hf.get("num_labels", len(hf.get("id2label") or {}) or 1)) if head == "score" else 1,
        bos_token_id=hf.get("bos_token_id"),
        eos_token_ids=_eos(hf.get("eos_token_id")),
        pad_token_id=hf.get("pad_token_id"),
    )
    kw.update(_family_fields(family, hf, source))
    kw.update(overrides)
    return ModelConfig(**kw)


def _family_fields(family: str, hf: dict[str, Any], source: str) -> dict[str, Any]:
    if family == "llama":
        bias = bool(hf.get("attention_bias", False))
        return {"qkv_bias": bias, "o_bias": bias}
    if family == "mistral":
        return {"sliding_window": hf.get("sliding_window")}
    if family == "qwen2":
        window = hf.get("sliding_window") if hf.get("use_sliding_window") else None
        return {"qkv_bias": True, "sliding_window": window, "max_window_layers": int(hf.get("max_window_layers", 0))}
    if family == "internlm2":
        bias = bool(hf.get("bias", False))
        return {"qkv_bias": bias, "o_bias": bias, "reward_token_id": hf.get("reward_token_id")}
    raise AssertionError(family)


_ARCH_NAMES = {(fam, head): arch for arch, (fam, head) in ARCHITECTURES.items()}


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """The HF config.json for a ModelConfig (transformers 4 and 5 both read it)."""
    rope: dict[str, Any] = {"rope_type": cfg.rope_scaling.kind, "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling.kind != "default":
        rope.update(factor=cfg.rope_scaling.factor)
    if cfg.rope_scaling.kind == "llama3":
        rope.update(
            low_freq_factor=cfg.rope_scaling.low_freq_factor,
            high_freq_factor=cfg.rope_scaling.high_freq_factor,
            original_max_position_embeddings=cfg.rope_scaling.original_max_position_embeddings,
        )
    eos = list(cfg.eos_token_ids)
    hf: dict[str, Any] = {
        "architectures": [_ARCH_NAMES[(cfg.family, cfg.head)]],
        "model_type": cfg.family,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None if cfg.rope_scaling.kind == "default" else dict(rope, type=rope["rope_type"]),
        "rope_parameters": rope,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
        "pad_token_id": cfg.pad_token_id,
        "torch_dtype": cfg.param_dtype,
    }
    if cfg.head == "score":
        hf["num_labels"] = cfg.num_labels
    if cfg.family == "llama":
        hf["attention_bias"] = cfg.qkv_bias
        hf["mlp_bias"] = False
    elif cfg.family == "mistral":
        hf["sliding_window"] = cfg.sliding_window
    elif cfg.family == "qwen2":
        hf["use_sliding_window"] = cfg.sliding_window is not None
        hf["sliding_window"] = cfg.sliding_window
        hf["max_window_layers"] = cfg.max_window_layers
    elif cfg.family == "internlm2":
        hf["bias"] = cfg.qkv_bias
        hf["reward_token_id"] = cfg.reward_token_id
    return hf
