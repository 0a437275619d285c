"""Answer grading: final-answer extraction and equivalence against gold answers."""

from sqjax.grading.equivalence import grade, is_equivalent, judge
from sqjax.grading.extract import extract_answer, gsm8k_gold, last_boxed_content
from sqjax.grading.symbolic import shutdown_workers

__all__ = [
    "extract_answer",
    "grade",
    "gsm8k_gold",
    "is_equivalent",
    "judge",
    "last_boxed_content",
    "shutdown_workers",
]
