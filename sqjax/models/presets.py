"""Named configs of the models the paper uses, keyed by their HF ids.

Values are those of each model's published config.json; tests/test_models_shapes.py checks
that `jax.eval_shape` of each gives the published parameter count.
"""

from __future__ import annotations

from sqjax.errors import SqjaxError
from sqjax.models.config import ModelConfig, RopeScaling

PRESETS: dict[str, ModelConfig] = {
    "Qwen/Qwen2-Math-7B-Instruct": ModelConfig(
        family="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_layers=28,
        num_heads=28, num_kv_heads=4, head_dim=128, rms_norm_eps=1e-6, rope_theta=10000.0,
        max_position_embeddings=4096, qkv_bias=True, bos_token_id=151643,
        eos_token_ids=(151645, 151643), pad_token_id=151643,
    ),
    "deepseek-ai/deepseek-math-7b-rl": ModelConfig(
        family="llama", vocab_size=102400, hidden_size=4096, intermediate_size=11008, num_layers=30,
        num_heads=32, num_kv_heads=32, head_dim=128, rms_norm_eps=1e-6, rope_theta=10000.0,
        max_position_embeddings=4096, bos_token_id=100000, eos_token_ids=(100001,),
    ),
    "meta-llama/Meta-Llama-3-8B": ModelConfig(
        family="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32,
        num_heads=32, num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=500000.0,
        max_position_embeddings=8192, bos_token_id=128000, eos_token_ids=(128001,),
    ),
    "meta-llama/Llama-3.1-8B": ModelConfig(
        family="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32,
        num_heads=32, num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=RopeScaling("llama3", 8.0, 1.0, 4.0, 8192),
        max_position_embeddings=131072, bos_token_id=128000, eos_token_ids=(128001,),
    ),
    "mistralai/Mistral-7B-v0.1": ModelConfig(
        family="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_layers=32,
        num_heads=32, num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=10000.0,
        max_position_embeddings=32768, sliding_window=4096, bos_token_id=1, eos_token_ids=(2,),
    ),
    "internlm/internlm2-7b-reward": ModelConfig(
        family="internlm2", vocab_size=92544, hidden_size=4096, intermediate_size=14336, num_layers=32,
        num_heads=32, num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=1000000.0,
        rope_scaling=RopeScaling("dynamic", 2.0), max_position_embeddings=32768, head="score",
        bos_token_id=1, eos_token_ids=(2,), pad_token_id=2, reward_token_id=92527,
    ),
}
# The Qwen2-Math family at the size one TPU chip trains (configs/colab.yaml).
PRESETS["Qwen/Qwen2-Math-1.5B-Instruct"] = ModelConfig(
    family="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_layers=28,
    num_heads=12, num_kv_heads=2, head_dim=128, rms_norm_eps=1e-6, rope_theta=10000.0,
    max_position_embeddings=4096, qkv_bias=True, tie_word_embeddings=True, bos_token_id=151643,
    eos_token_ids=(151645, 151643), pad_token_id=151643,
)
# The same architectures under the other names the paper uses.
PRESETS["Qwen/Qwen2-Math-1.5B"] = PRESETS["Qwen/Qwen2-Math-1.5B-Instruct"].replace(
    eos_token_ids=(151643,)
)
PRESETS["Qwen/Qwen2-Math-7B"] = PRESETS["Qwen/Qwen2-Math-7B-Instruct"].replace(eos_token_ids=(151643,))
PRESETS["deepseek-ai/deepseek-math-7b-base"] = PRESETS["deepseek-ai/deepseek-math-7b-rl"]
PRESETS["deepseek-ai/deepseek-math-7b-instruct"] = PRESETS["deepseek-ai/deepseek-math-7b-rl"]


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise SqjaxError(f"no preset named {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
