"""Best-of-n selection and majority-vote agreement over a question's answers.

The paper keeps the response its reward model scores highest (no correctness check). sqjax
also records how far the n final answers agree: answers are clustered by
`sqjax.grading.is_equivalent`, the largest cluster is the majority, and `agreement` is its
share of all n responses. A selected answer outside the majority is a cheap warning sign of a
wrong solution that the reward model liked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqjax.grading import is_equivalent

Equivalent = Callable[[str, str], bool]


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score; ties (and NaNs, which never win) go to the lowest index,
    so the choice does not depend on anything but the scores and their order."""
    if not scores:
        raise ValueError("best_index needs at least one score")
    best = 0
    for i, s in enumerate(scores):
        if not math.isnan(s) and (math.isnan(scores[best]) or s > scores[best]):
            best = i
    return best


@dataclass(frozen=True)
class Vote:
    """Majority vote over n answers.

    clusters: indices of equivalent answers, in order of first appearance (answers that are
      None belong to no cluster). majority: the largest cluster, the earliest on ties, or ()
      when no answer exists. agreement: len(majority) / n.
    """

    clusters: tuple[tuple[int, ...], ...]
    majority: tuple[int, ...]
    agreement: float
    answer: str | None  # the majority cluster's first answer

    def in_majority(self, index: int) -> bool:
        return index in self.majority


def cluster_answers(
    answers: Sequence[str | None], equivalent: Equivalent = is_equivalent
) -> list[list[int]]:
    """Groups answer indices: an answer joins the first cluster whose first answer it is
    equivalent to (checked both ways, since grading treats one side as the gold)."""
    clusters: list[list[int]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for cluster in clusters:
            rep = answers[cluster[0]]
            if equivalent(a, rep) or equivalent(rep, a):
                cluster.append(i)
                break
        else:
            clusters.append([i])
    return clusters


def majority_vote(answers: Sequence[str | None], equivalent: Equivalent = is_equivalent) -> Vote:
    """The Vote over `answers` (see Vote)."""
    clusters = cluster_answers(answers, equivalent)
    majority: list[int] = []
    for cluster in clusters:
        if len(cluster) > len(majority):
            majority = cluster
    n = len(answers)
    return Vote(
        clusters=tuple(tuple(c) for c in clusters),
        majority=tuple(majority),
        agreement=len(majority) / n if n else 0.0,
        answer=answers[majority[0]] if majority else None,
    )
