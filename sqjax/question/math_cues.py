"""A transparent, model-free check of whether a text reads like a math problem.

Used beside the LM judge when measuring what a generator writes from the bare prefix: a
135M judge cannot tell math from other requests (its P(Yes) is flat), while this rule is
easy to audit. A text counts when it has inline LaTeX math, or a math cue (a task word or a math noun)
and a quantity (a digit, a LaTeX command or an operator between
symbols). Measured on real data in
tests/test_question_math_cues.py: nearly every GSM8K/MATH question passes, general requests
do not.
"""

from __future__ import annotations

import re

_CUES = re.compile(
    r"\b(solve|calculate|compute|find|evaluate|simplify|determine|prove|how many|how much|"
    r"equation|integer|prime|probability|percent|percentage|weight|area|perimeter|volume|"
    r"triangle|circle|square|rectangle|remainder|sum|product|average|ratio|fraction|polynomial|"
    r"derivative|integral|function|number|digits?|cost|costs|price|total|value|factor|"
    r"rationalize|express|how long|how far|how old|how fast|times|each|per|more|less|left|half|twice)\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\d|\\[a-zA-Z]+|[a-z]\s*[-+*/^=<>]\s*[a-z0-9(]|\$|\b(one|two|three|four|five|six|seven|eight|"
    r"nine|ten|eleven|twelve|twenty|thirty|hundred|thousand|million|double|twice|triple|half)\b",
    re.IGNORECASE,
)
_LATEX_MATH = re.compile(r"\$[^$]*[\d=+\-^\\][^$]*\$")


def looks_like_math(text: str) -> bool:
    """True when `text` reads like a math problem (see module docstring)."""
    if _LATEX_MATH.search(text):
        return True
    return bool(_CUES.search(text)) and bool(_QUANTITY.search(text))
