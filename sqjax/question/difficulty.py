"""The difficulty scorer's labels and checks: fail rates, a fixed held-out split and the rank
correlation of predictions with labels.

Labels: a question's fail rate is 1 - (correct samples / samples) of a solver's answers,
graded against the gold answer (sqjax.grading). The regressor itself (the LM's decoder with a
one-output score head, MSE) is the trainer's `regression` loss (sqjax.training.regression),
trained by the difficulty stage like every other training stage. The paper gives this design
(DeepSeekMath-7B-Base + scalar head, MSE) but no settings; every number is the config's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def fail_rate(correct: Sequence[bool]) -> float:
    """1 - pass rate of a question's graded samples."""
    return 1.0 - sum(bool(c) for c in correct) / len(correct)


def ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), np.float64)
    r[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tie = x == value
        r[tie] = r[tie].mean()
    return r


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson of average ranks); nan when either is constant."""
    ra, rb = ranks(a), ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def heldout_ids(ids: Sequence[str], share: float, minimum: int = 2) -> set[str]:
    """A fixed split by id hash: the `max(minimum, round(share * n))` ids with the smallest
    hashes are held out (none when fewer than 2 * minimum ids)."""
    if len(ids) < 2 * minimum:
        return set()
    by_hash = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).digest())
    return set(by_hash[: max(minimum, round(share * len(ids)))])
