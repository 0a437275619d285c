"""A tiny random chat model (real BPE tokenizer trained on GSM8K text, ChatML template) for
the question-stage tests, and checks that it loads and samples through sqjax.

Other test files import `tiny_model_dir` and `tiny_config` from here.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from sqjax import assets
from sqjax.data.asset_tokenizers import chat_template
from sqjax.data.chat import chat_format

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@functools.cache
def tiny_tokenizer(vocab_size: int = 400):
    """Byte-level BPE trained on 300 GSM8K questions, with Qwen2's ChatML template. Its
    alphabet is the bytes seen in that text (nearly all printable ASCII), so a random model
    writes mostly ASCII and the language filter keeps some of its questions."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    lines = assets.resolve(assets.GSM8K_TRAIN).read_text(encoding="utf-8").splitlines()[:300]
    corpus = [json.loads(ln)["question"] for ln in lines]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = chat_template("qwen2")
    return fast


def tiny_model_dir(out: Path, seed: int = 0) -> Path:
    """An HF directory (config, safetensors, tokenizer) of a 2-layer random Llama."""
    from sqjax.checkpoints.api import export_hf
    from sqjax.models.decoder import create_model
    from sqjax.models.hf_config import from_hf_config

    tok = tiny_tokenizer()
    hf = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "eos_token_id": tok.convert_tokens_to_ids("<|im_end|>"),
        "torch_dtype": "float32",
    }
    cfg = from_hf_config(hf, source="tiny test model")
    export_hf(create_model(cfg, seed), out, tokenizer=tok)
    return out


def tiny_config(model_dir: Path, extra: str = "") -> str:
    """A run config naming the tiny model `tiny` in every question-side role."""
    return f"""
run_dir: unused
seed: 0
models:
  tiny: {{path: "{model_dir}", dtype: float32}}
{extra}
"""


@pytest.mark.slow
def test_tiny_model_loads_and_samples_questions(tmp_path):
    from sqjax.question.sampling import sample_questions
    from sqjax.sampling.llm import LLM

    d = tiny_model_dir(tmp_path / "m")
    llm = LLM(d, dtype="float32")
    fmt = chat_format(llm.tokenizer)
    assert fmt.prefix.endswith("<|im_start|>user\n") and fmt.end_of_turn == "<|im_end|>"
    kw = {"temperature": 1.0, "top_p": 0.99, "max_tokens": 12, "batch_size": 4}
    a = sample_questions(llm, 5, seed=3, **kw)
    b = sample_questions(llm, 5, seed=3, **kw)
    assert a == b and len(a) == 5
    assert all(0 < r["num_tokens"] <= 12 for r in a)
    assert len({r["question"] for r in a}) > 1  # five samples, not one repeated
