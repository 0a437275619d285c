"""Answer equivalence: exact string, then exact/tolerant numbers, then math-verify.

Order of checks, cheapest first (most answers never reach the subprocess):
1. `exact`: canonical strings equal (see normalize.py for what is dropped).
2. `numeric`: both sides are plain numbers, fractions or mixed numbers: equal if the exact
   values agree, or, when a side was written with a decimal point (possibly rounded), within
   a relative 1e-4. Integers are compared exactly, so 10001 != 10000. A percent side may be
   read as either v or v/100 ("50\\%" equals "50" and "0.5"). Both numbers and unequal: False.
3. `symbolic`: math-verify `verify(parse(gold), parse(pred))` in a worker process with a hard
   timeout; `timeout` when it overruns (or exhausts its memory), which counts as unequal.
   math-verify decides structure: "1, 2" and "\\{1,2\\}" are sets (order-free); "(1,2)" is an
   open interval and "[1,2]" a closed one, so they differ; "(1,2)" vs "(2,1)" differ; matrices
   compare entrywise; "x^2+1" vs "1+x^2" are equal by simplification. A decimal against an
   irrational gold ("6.2832" vs "2\\pi") is math-verify's call (it rounds to 6 decimals), so
   the 1e-4 tolerance covers only number-vs-number pairs. math-verify reads `i` as a symbol,
   so "e^{i\\pi}" is not -1 (a row in tests/data/grading_cases.jsonl records this).
"""

from __future__ import annotations

from fractions import Fraction

from sqjax.grading.extract import extract_answer
from sqjax.grading.normalize import (
    canonical_answer,
    clean_answer,
    is_long_number,
    parse_number,
)
from sqjax.grading.symbolic import get_pool

RELATIVE_TOLERANCE = Fraction(1, 10_000)  # exact: a float factor overflows on huge values


def _close(a: Fraction, b: Fraction) -> bool:
    return abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b))


def _numbers_equal(
    pred: tuple[Fraction, bool],
    pred_percent: bool,
    gold: tuple[Fraction, bool],
    gold_percent: bool,
    tolerance: Fraction | None = None,
) -> bool:
    """Exact equality, or tolerance when a decimal was written (or the item gives one); a
    percent side may be v/100."""
    pred_values = [pred[0], pred[0] / 100] if pred_percent and not gold_percent else [pred[0]]
    gold_values = [gold[0], gold[0] / 100] if gold_percent and not pred_percent else [gold[0]]
    rounded = pred[1] or gold[1]
    for p in pred_values:
        for g in gold_values:
            if p == g or (rounded and _close(p, g)):
                return True
            if tolerance is not None and abs(p - g) <= tolerance * Fraction(101, 100):
                return True
    return False


def _tolerance(value: float | None) -> Fraction | None:
    if value is None:
        return None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"tolerance={value} must be a finite number >= 0")
    return Fraction(value)


def judge(
    pred: str | None, gold: str, timeout_s: float = 5.0, tolerance: float | None = None
) -> tuple[bool, str]:
    """(verdict, method) with method one of no_answer/exact/numeric/symbolic/timeout.

    Any pred string, however long or malformed, gets a verdict: untrusted model output never
    makes grading raise. `tolerance`: the item's absolute numeric tolerance, if it has one.
    """
    if pred is None or not pred.strip():
        return False, "no_answer"
    pred_canon, pred_percent = canonical_answer(pred)
    gold_canon, gold_percent = canonical_answer(gold)
    if not pred_canon:
        return False, "no_answer"
    if pred_canon == gold_canon:
        return True, "exact"
    pred_num, gold_num = parse_number(pred_canon), parse_number(gold_canon)
    if pred_num is not None and gold_num is not None:
        equal = _numbers_equal(
            pred_num, pred_percent, gold_num, gold_percent, _tolerance(tolerance)
        )
        return equal, "numeric"
    if (is_long_number(pred_canon) or pred_num is not None) and (
        is_long_number(gold_canon) or gold_num is not None
    ):
        return False, "numeric"
    verdict = get_pool().check(clean_answer(gold)[0], clean_answer(pred)[0], timeout_s)
    if verdict is None:
        return False, "timeout"
    return verdict, "symbolic"


def is_equivalent(
    pred: str | None, gold: str, timeout_s: float = 5.0, tolerance: float | None = None
) -> bool:
    """Whether a final answer equals the gold answer; None or a timeout count as unequal."""
    return judge(pred, gold, timeout_s, tolerance)[0]


def grade(
    output_text: str, gold: str, timeout_s: float = 5.0, tolerance: float | None = None
) -> dict:
    """Grades a whole model output: {"answer": extracted or None, "correct", "method"}."""
    answer = extract_answer(output_text)
    correct, method = judge(answer, gold, timeout_s, tolerance)
    return {"answer": answer, "correct": correct, "method": method}
