"""HF config.json <-> ModelConfig: both RoPE layouts, round trips, and loud refusals."""

from __future__ import annotations

import pytest
import transformers

from sqjax.errors import SqjaxError
from sqjax.models.config import RopeScaling
from sqjax.models.hf_config import from_hf_config, to_hf_config
from sqjax.models.presets import PRESETS

# meta-llama/Llama-3.1-8B config.json as published (transformers 4 layout: rope_theta and
# rope_scaling at top level).
LLAMA31_V4 = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 128256,
}


def test_transformers4_layout_reads_as_the_preset():
    assert from_hf_config(LLAMA31_V4) == PRESETS["meta-llama/Llama-3.1-8B"]


def test_transformers5_layout_reads_the_same():
    v5 = transformers.LlamaConfig(**LLAMA31_V4).to_dict()  # transformers 5 writes rope_parameters
    assert v5["rope_parameters"]["rope_theta"] == 500000.0 and "rope_theta" not in v5
    assert v5["architectures"] == ["LlamaForCausalLM"]
    assert from_hf_config(v5) == from_hf_config(LLAMA31_V4)


def test_old_rope_scaling_type_key_is_read():
    hf = dict(LLAMA31_V4, rope_scaling={"type": "linear", "factor": 2.0}, rope_theta=10000.0)
    cfg = from_hf_config(hf)
    assert (cfg.rope_theta, cfg.rope_scaling.kind, cfg.rope_scaling.factor) == (
        10000.0,
        "linear",
        2.0,
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_to_hf_config_round_trips(name):
    cfg = PRESETS[name]
    hf = to_hf_config(cfg)
    assert from_hf_config(hf) == cfg
    # what transformers itself makes of it (v5 layout) reads back the same too
    if cfg.family != "internlm2":  # InternLM2 configs need remote code
        v5 = transformers.AutoConfig.for_model(**hf).to_dict()
        assert from_hf_config(v5) == cfg


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"},
            r"unsupported architectures=\['GPT2LMHeadModel'\]",
        ),
        (
            {
                "rope_scaling": None,
                "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4},
            },
            r"rope type 'yarn' is not supported",
        ),
        ({"rope_scaling": {"type": "yarn", "factor": 4.0}}, r"rope type 'yarn' is not supported"),
        ({"hidden_act": "gelu"}, r"hidden_act='gelu' is not supported \(only silu\)"),
        ({"mlp_bias": True}, r"mlp_bias=true is not supported"),
    ],
    ids=["architecture", "yarn-v5", "yarn-v4", "gelu", "mlp-bias"],
)
def test_unsupported_settings_raise(change, message):
    with pytest.raises(SqjaxError, match=r"^ckpt/config\.json: " + message):
        from_hf_config(dict(LLAMA31_V4, **change), source="ckpt/config.json")


def test_rope_scaling_kind_is_validated():
    with pytest.raises(SqjaxError, match="rope scaling type 'ntk' is not supported"):
        RopeScaling(kind="ntk")
