"""Converts a tiktoken BPE file (base64 token, rank per line) to a transformers fast tokenizer.

This is the conversion transformers itself uses (`transformers.convert_slow_tokenizer.
TikTokenConverter`: byte-level BPE whose merges are recovered from the ranks, a Split
pre-tokenizer with the model's regex, then ByteLevel), with the rank file read here so that the
`tiktoken` package is not needed. Special tokens are appended after the ranks and must have the
ids the model uses; that is checked, not assumed.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from tokenizers import Tokenizer, normalizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from sqjax.errors import SqjaxError


def load_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Reads a tiktoken rank file: one `base64(token) rank` pair per line."""
    path = Path(path)
    ranks: dict[bytes, int] = {}
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise SqjaxError(f"{path}:{lineno}: expected 'base64token rank', got {line[:60]!r}")
            ranks[base64.b64decode(parts[0])] = int(parts[1])
    return ranks


class _FileRankConverter(TikTokenConverter):
    """TikTokenConverter reading the ranks with load_tiktoken_ranks (no tiktoken package)."""

    @staticmethod
    def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
        return load_tiktoken_ranks(tiktoken_url)


def convert_tiktoken(
    path: str | os.PathLike,
    pattern: str,
    special_tokens: dict[str, int],
    nfc: bool = False,
) -> Tokenizer:
    """Builds a `tokenizers.Tokenizer` from a tiktoken rank file.

    `special_tokens` maps each special token to its id; the ids must continue the ranks without
    gaps (as in Qwen2 and Llama-3). `nfc` adds NFC normalization (Qwen normalizes its input).
    """
    ordered = sorted(special_tokens.items(), key=lambda kv: kv[1])
    tokenizer = _FileRankConverter(
        vocab_file=os.fspath(path), pattern=pattern, extra_special_tokens=[t for t, _ in ordered]
    ).converted()
    if nfc:
        tokenizer.normalizer = normalizers.NFC()
    for token, want in ordered:
        got = tokenizer.token_to_id(token)
        if got != want:
            raise SqjaxError(
                f"{path}: special token {token!r} got id {got}, expected {want}; the rank file "
                f"does not have the number of ranks the special-token ids assume"
            )
    return tokenizer


def to_transformers(
    tokenizer: Tokenizer,
    chat_template: str | None,
    bos_token: str | None,
    eos_token: str | None,
    pad_token: str | None,
) -> PreTrainedTokenizerFast:
    """Wraps a `tokenizers.Tokenizer` as a transformers fast tokenizer with a chat template."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        chat_template=chat_template,
        clean_up_tokenization_spaces=False,
    )
