"""The paper's language rule: keep a question only if it is non-empty and pure ASCII.

An optional language-ID check (e.g. `langdetect`) was left out: the ASCII rule already
removes non-Latin scripts, and the light packages guess poorly on short math text full of
numbers and symbols.
"""

from __future__ import annotations


def language_reason(text: str) -> str | None:
    """None when the text passes; else why not: "empty" or "non_ascii"."""
    if not text.strip():
        return "empty"
    if not text.isascii():
        return "non_ascii"
    return None
