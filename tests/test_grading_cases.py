"""Every row of tests/data/grading_cases.jsonl: (pred, gold, expected verdict).

The verdicts were written by hand from mathematical truth and the documented conventions
(see sqjax/grading/normalize.py: "50\\%" equals 50 and 0.5, units and degree marks dropped,
a written decimal within relative 1e-4 is equal). Rows of kind "gsm8k" hold a whole GSM8K
answer field as gold. A row with "known_limitation" records a case the grader gets wrong,
with the reason; the test asserts the wrong verdict so that a fix is noticed.
"""

from pathlib import Path

import pytest

from sqjax.data.jsonl import load_jsonl
from sqjax.grading import gsm8k_gold, is_equivalent, judge

ROWS = load_jsonl(
    Path(__file__).parent / "data" / "grading_cases.jsonl", ["kind", "pred", "gold", "equal"]
)


def test_table_size_and_coverage() -> None:
    kinds = {row["kind"] for row in ROWS}
    assert len(ROWS) >= 200
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
    ):
        assert kind in kinds


@pytest.mark.parametrize("row", ROWS, ids=[f"{i}-{r['kind']}" for i, r in enumerate(ROWS)])
def test_case(row: dict) -> None:
    gold = gsm8k_gold(row["gold"]) if row["kind"] == "gsm8k" else row["gold"]
    verdict, method = judge(row["pred"], gold)
    assert method != "timeout", f"{row['pred']!r} vs {gold!r} timed out"
    expected = row["equal"] != bool(row.get("known_limitation"))
    assert verdict == expected, f"{row['pred']!r} vs {gold!r}: got {verdict} via {method}"
    assert is_equivalent(row["pred"], gold) == verdict
