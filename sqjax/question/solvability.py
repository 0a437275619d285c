"""Verdict parsing for the solvability judge (its prompt is a library prompt, by default the
paper's Figure 12: sqjax.question.prompt_library), and the probes' is-it-math prompts.

The judge reasons step by step and ends with Yes or No. Two readings of its reply:
- strict (sqjax default): the reply's last non-empty line must end with "yes"/"no" (markdown,
  `\boxed{}` and punctuation aside) or start with one ("Yes, it is solvable."); otherwise
  (e.g. cut off at max_tokens) there is no verdict and the question is not kept.
- lax (the authors' code): keep when the substring "yes" occurs anywhere in the lowercased
  reply -- which also accepts "Yes, it is a math problem ... so the answer is No" and "eyes".
Both are recorded; the filter keeps by the configured one.
"""

from __future__ import annotations

import re
from typing import Literal

Verdict = Literal["yes", "no", "none"]

IS_MATH = """\
Is the text below a math problem, that is, a question or task whose answer is found by \
mathematical reasoning or calculation?

Think about it briefly, then end your reply with a last line that is exactly "Yes" or \
exactly "No".

Text:
{question}"""

IS_MATH_DIRECT = """\
Is the text below a math problem? Answer with one word: Yes or No.

Text:
{question}"""

_DECOR = r"[\s*_#`'\".,:;!)(\[\]{}]|\\boxed|\\text"
_END = re.compile(rf"\b(yes|no)(?:{_DECOR})*$", re.IGNORECASE)
_START = re.compile(rf"^(?:{_DECOR})*(yes|no)\b", re.IGNORECASE)
# "Conclusion: Yes, it is solvable." / "So the answer is **No** because ..."
_LABELLED = re.compile(
    rf"\b(?:conclu\w*|answer|verdict|judg\w*)(?:\s+is)?(?:{_DECOR})*(yes|no)\b", re.IGNORECASE
)


def judge_prompt(template: str, question: str) -> str:
    """The user message asking the judge about `question`."""
    return template.format(question=question.strip())


def strict_verdict(reply: str) -> Verdict:
    """The yes/no that ends (else starts) the last non-empty line, else the last one the
    line labels as a conclusion or answer, else "none"."""
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    if not lines:
        return "none"
    last = lines[-1]
    hit = _END.search(last) or _START.search(last)
    labelled = list(_LABELLED.finditer(last))
    hit = hit or (labelled[-1] if labelled else None)
    return hit.group(1).lower() if hit else "none"  # type: ignore[return-value]


def lax_verdict(reply: str) -> Verdict:
    """The authors' rule: "yes" if the substring occurs anywhere (case-folded), else "no"."""
    return "yes" if "yes" in reply.lower() else "no"


def verdict(reply: str, mode: str) -> Verdict:
    """strict_verdict or lax_verdict by name."""
    if mode == "strict":
        return strict_verdict(reply)
    if mode == "lax":
        return lax_verdict(reply)
    raise ValueError(f"verdict mode={mode!r} is not one of 'strict', 'lax'")
