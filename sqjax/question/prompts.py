"""The two QPO rewrite goals and their prompts, by name from the prompt library
(sqjax.question.prompt_library).

- solvability (paper default: Figure 10): a teacher checks that the question is a math
  problem, solves it, repairs it (one numeric answer, common sense, self-contained, no
  solution) and may ask for multi-step reasoning; the reply ends with "FINAL QUESTION:".
- difficulty (paper default: Figure 11): Evol-Instruct style: correct errors first, list ways
  to make the problem harder, plan, rewrite adding only 10-20 words, review; the reply ends
  with "Step 4 #Finally Rewritten Problem#:".

`rewrite_parse.parse_rewrite` reads the text after the last of either marker. sqjax's
rewordings (`sqjax-qpo-solvability`, `sqjax-qpo-difficulty`) are options of
`qpo_rewrite.prompts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from sqjax.question.prompt_library import PAPER_PROMPTS, load_prompt

Goal = Literal["solvability", "difficulty"]
GOALS: tuple[Goal, ...] = ("solvability", "difficulty")
PAPER_REWRITE_PROMPTS: dict[str, str] = {
    "solvability": PAPER_PROMPTS["rewrite-solvability"],
    "difficulty": PAPER_PROMPTS["rewrite-difficulty"],
}


def rewrite_prompt(
    goal: str, question: str, prompt_names: Mapping[str, str] = PAPER_REWRITE_PROMPTS
) -> str:
    """The user message asking the optimizer to rewrite `question` toward `goal`, with the
    library prompt `prompt_names[goal]`."""
    if goal not in GOALS:
        raise ValueError(f"rewrite goal={goal!r} is not one of {GOALS}")
    return load_prompt(prompt_names[goal]).fill(question)
