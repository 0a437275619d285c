"""Host-side stop strings and final text (vLLM semantics).

A stop string ends a completion as soon as the decoded text of the generated tokens contains
it; the text is cut just before it (the stop string is not returned), the token ids keep
every token up to and including the one that completed it, and finish_reason is "stop".
Stop strings count only from `min_tokens` generated tokens on. Text is decoded with
skip_special_tokens=True; a completion ended by a stop token id keeps that id in token_ids but
not its text.
"""

from __future__ import annotations

from collections.abc import Sequence


def decode(tokenizer, token_ids: Sequence[int]) -> str:
    if tokenizer is None:
        return ""
    return tokenizer.decode(list(token_ids), skip_special_tokens=True)


def _stop_in(text: str, stops: Sequence[str], after: int) -> int:
    """Index of the first stop string ending beyond text[:after], or -1."""
    hits = [i for i in (text.find(s, max(0, after - len(s) + 1)) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def find_stop(
    tokenizer, token_ids: Sequence[int], stops: Sequence[str], checked: int, min_tokens: int
):
    """(n_tokens, text) for the first token count n > checked, n >= min_tokens, whose token
    completes a stop string (as vLLM checks after every token), or None."""
    first = max(checked + 1, min_tokens, 1)
    if not stops or len(token_ids) < first:
        return None
    before = len(decode(tokenizer, token_ids[: first - 1]))
    if _stop_in(decode(tokenizer, token_ids), stops, before) < 0:
        return None
    for n in range(first, len(token_ids) + 1):
        text = decode(tokenizer, token_ids[:n])
        cut = _stop_in(text, stops, before)
        if cut >= 0:
            return n, text[:cut]
        before = len(text)
    return None
