"""Shared pieces for the training tests: a character-level ChatML tokenizer, a tiny Llama
config, and JSONL writers. The one test checks the tokenizer gives the QFT layout."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from sqjax.data.chat import chat_format, encoder
from sqjax.models.config import ModelConfig

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}{% endif %}"
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
QUESTIONS = [
    "What is 2 + 3?",
    "A box has 7 red and 5 blue balls. How many balls are in it?",
    "Find x if 3x = 12.",
    "Tom reads 4 pages a day. How many pages in 9 days?",
    "What is the sum of the first 10 odd numbers?",
    "Is 91 prime?",
    "A train goes 60 km in 1.5 hours. What is its speed?",
    "Simplify 18/24.",
]


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character (printable ASCII + newline) plus ChatML specials."""
    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(SPECIALS + ["<unk>"] + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>"
    )
    fast.chat_template = CHATML
    return fast


def tiny_config(vocab_size: int = 100, **overrides) -> ModelConfig:
    base = {
        "family": "llama", "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64,
        "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "head_dim": 8, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 512,
    }
    return ModelConfig(**{**base, **overrides})


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_char_tokenizer_gives_qft_layout():
    tok = char_tokenizer()
    fmt = chat_format(tok)
    assert fmt.prefix == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
    assert fmt.end_of_turn == "<|im_end|>"
    ids = encoder(tok)(fmt.qft_text("Is 91 prime?"))
    assert ids[0] == 1 and ids[-1] == 2 and len(ids) == 1 + len("system\nBe brief.") + 1 + 1 + 1 + len("user\nIs 91 prime?") + 1
