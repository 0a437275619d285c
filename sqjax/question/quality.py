"""The paper's question-quality measurement (Figures 4, 5, 9), as pure functions: reading the
difficulty level out of a judge's Figure 13 reply, and summarising rated questions per source
into the solvable ratio and the difficulty distribution."""

from __future__ import annotations

import re
from collections.abc import Sequence

LEVELS = ("very easy", "easy", "medium", "hard", "very hard")
# "difficulty": "medium"  /  'difficulty': 'Hard'  /  **Difficulty:** very hard  /
# The difficulty level is "Very easy" (prose, as small judges write it)
_VALUE = re.compile(
    r"""difficulty[\s*_"'`]*(?:level)?[\s*_"'`]*(?:[:=]|\bis\b)[\s*_`]*"""
    r"""(?:"([^"\n]*)"|'([^'\n]*)'|([^\n,}]*))""",
    re.IGNORECASE,
)


def difficulty_level(reply: str) -> str | None:
    """The level the reply's last `difficulty` field holds (one of LEVELS), else None.

    A value that is not exactly one level (e.g. the template's own
    "[very easy/easy/medium/hard/very hard]" copied back) gives None."""
    for m in reversed(list(_VALUE.finditer(reply))):
        value = next(g for g in m.groups() if g is not None)
        value = " ".join(value.strip(" \t*_`[]().").lower().split())
        if value in LEVELS:
            return value
    return None


def _share(rows: Sequence[dict], key: str, value: object) -> float:
    return sum(r[key] == value for r in rows) / len(rows) if rows else 0.0


def summarize(rows: Sequence[dict]) -> dict:
    """n, solvable share (strict and lax verdicts), verdicts parsed, and the share of each
    difficulty level (plus `unparsed`) for rows rated by the rate-questions stage."""
    return {
        "n": len(rows),
        "solvable_share": _share(rows, "solvable", "yes"),
        "solvable_share_lax": _share(rows, "solvable_lax", "yes"),
        "solvable_parse_rate": 1.0 - _share(rows, "solvable", "none") if rows else 0.0,
        "difficulty": {level: _share(rows, "difficulty", level) for level in LEVELS},
        "difficulty_parse_rate": 1.0 - _share(rows, "difficulty", None) if rows else 0.0,
    }


def source_kind(stage: str, generator: str) -> str:
    """What a (stage, generator) group of questions is, in the paper's terms."""
    if stage == "qpo-sample":
        return "raw QFT output"
    if stage == "filter":
        return "filtered"
    return "QPO output" if generator.startswith("qpo:") else "generator output"
