"""Model output is untrusted input: any answer string grades to a verdict, never an exception
(issue 17 item 1), and the grader's worker processes inherit no secrets (item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqjax.grading import grade, judge
from sqjax.grading.symbolic import SymbolicPool

HUGE = "1" * 5000  # past CPython's 4,300-digit int/str conversion limit


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        (HUGE, "5", False),
        ("5", HUGE, False),
        (HUGE, HUGE, True),
        (HUGE + ".0", HUGE, True),
        (HUGE, "1" * 4999 + "2", False),
        ("0." + "3" * 5000, "1/3", True),  # a rounded decimal: within 1e-4
        ("1/" + "3" * 5000, "5", False),
        ("\\frac{1}{" + "9" * 5000 + "}", "0", False),
        ("-" + HUGE, HUGE, False),
        ("1" * 200_000, "7", False),
    ],
    ids=lambda v: v[:12] if isinstance(v, str) else str(v),
)
def test_huge_numbers_grade_without_raising(pred: str, gold: str, expected: bool) -> None:
    verdict, method = judge(pred, gold)
    assert verdict is expected
    assert method in {"exact", "numeric"}


def test_huge_number_in_a_whole_output() -> None:
    g = grade(f"So the total is \\boxed{{{HUGE}}}.", "42")
    assert g == {"answer": HUGE, "correct": False, "method": "numeric"}


def test_grading_workers_start_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-0123456789")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    pool = SymbolicPool(size=1)
    try:
        assert pool.check("x^2", "x*x", 30.0) is True
        (pid,) = pool.pids()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    finally:
        pool.close()
    names = {e.split(b"=", 1)[0].decode() for e in environ if e}
    assert "OPENAI_API_KEY" not in names and "HF_TOKEN" not in names
    assert not any(b"secret" in e for e in environ)


def test_majority_vote_with_a_huge_answer() -> None:
    """The reward stage's vote over a question's answers (it failed on every rerun)."""
    from sqjax.answer.selection import majority_vote

    vote = majority_vote([HUGE, "5", None, "5.0", HUGE + "0"])
    assert vote.clusters == ((0,), (1, 3), (4,))
    assert vote.answer == "5" and vote.agreement == pytest.approx(2 / 5)
