"""Every row of tests/data/grading_cases.jsonl: (pred, gold, expected verdict).

The verdicts were written by hand from mathematical truth and the documented conventions
(see sqjax/grading/normalize.py: "50\\%" equals 50 and 0.5, units and degree marks dropped,
a written decimal within relative 1e-4 is equal). Rows of kind "gsm8k" hold a whole GSM8K
answer field as gold; rows of kind "output" (and every row with "model") hold a whole model
output as pred, graded with extraction; a "tolerance" is the item's own absolute numeric
tolerance (OlympiadBench's `error` field). Rows with "model" are real outputs of that model
(tests/data/make_model_outputs.py: the eval stage's prompt, greedy, on the first GSM8K and
MATH test problems), labelled by hand: "answer" is what a reader extracts from the output, and
a "gold_note" marks a gold replaced to test that output's answer form. A row with
"known_limitation" records a case the grader gets wrong, with the reason; the test asserts the
wrong verdict so that a fix is noticed.
"""

from pathlib import Path

import pytest

from sqjax.data.jsonl import load_jsonl
from sqjax.grading import grade, gsm8k_gold, is_equivalent, judge

ROWS = load_jsonl(
    Path(__file__).parent / "data" / "grading_cases.jsonl", ["kind", "pred", "gold", "equal"]
)


def test_table_size_and_coverage() -> None:
    kinds = {row["kind"] for row in ROWS}
    assert len(ROWS) >= 200
    assert sum("model" in row for row in ROWS) >= 25  # real model outputs, not only hand-written
    assert sum(not row["equal"] for row in ROWS) >= 50
    for kind in (
        "fraction",
        "radical",
        "interval",
        "set",
        "unit",
        "percent",
        "degree",
        "latex",
        "number",
        "gsm8k",
        "scientific",
        "repeating",
        "output",
        "item_tolerance",
        "model_output",
    ):
        assert kind in kinds


@pytest.mark.parametrize("row", ROWS, ids=[f"{i}-{r['kind']}" for i, r in enumerate(ROWS)])
def test_case(row: dict) -> None:
    gold = gsm8k_gold(row["gold"]) if row["kind"] == "gsm8k" else row["gold"]
    tolerance = row.get("tolerance")
    expected = row["equal"] != bool(row.get("known_limitation"))
    if row["kind"] == "output" or "model" in row:
        g = grade(row["pred"], gold, tolerance=tolerance)
        if "answer" in row:
            assert g["answer"] == row["answer"], f"extracted {g['answer']!r} from {row['pred']!r}"
        verdict, method = g["correct"], g["method"]
    else:
        verdict, method = judge(row["pred"], gold, tolerance=tolerance)
        assert is_equivalent(row["pred"], gold, tolerance=tolerance) == verdict
    assert method != "timeout", f"{row['pred']!r} vs {gold!r} timed out"
    assert verdict == expected, f"{row['pred']!r} vs {gold!r}: got {verdict} via {method}"
