"""Strict (final verdict) vs lax (the authors' "yes" anywhere) readings of judge replies,
on replies where the two disagree and where they agree."""

import pytest

from sqjax.question.prompt_library import load_prompt
from sqjax.question.solvability import (
    IS_MATH,
    judge_prompt,
    lax_verdict,
    strict_verdict,
    verdict,
)

# (reply, strict, lax)
CASES = [
    ("The text asks for 3 + 4. All numbers are given.\nYes", "yes", "yes"),
    ("It is not a math problem; it asks for a poem.\nNo", "no", "no"),
    # disagreements: "yes" earlier in the reasoning, final No
    (
        "Yes, it is a math problem. But the price of a pen is never given, so it cannot be solved.\nNo",
        "no",
        "yes",
    ),
    (
        "Is every quantity given? Yes. Is the answer unique? No, x can be 2 or -2.\n\n**No**",
        "no",
        "yes",
    ),
    # "yes" as a substring only
    ("The problem describes the colour of her eyes, not a quantity.\nNo", "no", "yes"),
    # cut off before the verdict (max_tokens): strict has none
    ("Let me check the conditions. Yes, the first condition holds, and then", "none", "yes"),
    # markdown and sentence verdicts
    ("Reasoning...\n\nFinal answer: **Yes**.", "yes", "yes"),
    ("Reasoning...\nTherefore the answer is: No.", "no", "no"),
    ("Reasoning...\n\\boxed{Yes}\n\n", "yes", "yes"),
    ("No mention of yes/no at the end\nso I am unsure", "none", "yes"),
    ("", "none", "no"),
    # conclusions in the shapes replies to the paper's Figure 12 prompt take
    (
        "1. It is a math problem.\n2. It can be solved.\nConclusion: Yes, it is valuable.",
        "yes",
        "yes",
    ),
    ("Steps...\nSo the answer is **No** because the price is missing.", "no", "no"),
    ("Steps...\nMy judgment: 'No', since it is not solvable; yes it is math.", "no", "yes"),
]


@pytest.mark.parametrize("reply, strict, lax", CASES)
def test_strict_and_lax_readings(reply, strict, lax):
    assert strict_verdict(reply) == strict
    assert lax_verdict(reply) == lax
    assert verdict(reply, "strict") == strict and verdict(reply, "lax") == lax


def test_table_has_real_disagreements():
    assert sum(s != lx for _, s, lx in CASES) >= 4


def test_prompts_ask_for_a_final_yes_or_no():
    ours = load_prompt("sqjax-solvability-check")
    for prompt in (ours.fill(" What is 2 + 2?\n"), judge_prompt(IS_MATH, " What is 2 + 2?\n")):
        assert prompt.endswith("What is 2 + 2?") and '"Yes"' in prompt and '"No"' in prompt
    assert "step by step" in ours.text
    paper = load_prompt("paper-fig12-solvability-check").fill("What is 2 + 2?")
    assert "conclude with either 'Yes' or 'No'" in paper
    with pytest.raises(ValueError):
        verdict("Yes", "maybe")


@pytest.mark.parametrize(
    "line, want",
    [
        ("Yes, it is solvable.", "yes"),
        ("No, x is not unique", "no"),
        ("Answer: `No`", "no"),
        ("Not solvable because of no data", "none"),
        ("The answer: yes and no", "no"),
    ],
)
def test_strict_reads_a_verdict_at_either_end_of_the_last_line(line, want):
    assert strict_verdict("Reasoning first.\n" + line) == want
