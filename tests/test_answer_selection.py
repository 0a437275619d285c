"""Best-of-n choice and majority-vote agreement on hand-made answer tables."""

from __future__ import annotations

import math

import pytest

from sqjax.answer.selection import best_index, cluster_answers, majority_vote
from sqjax.stages.reward import group_by_question, select

# answers of 5 responses -> (clusters, majority, agreement); equivalence by sqjax.grading
TABLE = [
    (["12", "12.0", "\\frac{24}{2}", "13", None], [[0, 1, 2], [3]], (0, 1, 2), 3 / 5),
    (["1/2", "0.5", "3", "3", "3"], [[0, 1], [2, 3, 4]], (2, 3, 4), 3 / 5),
    (["a", "b", "c"], [[0], [1], [2]], (0,), 1 / 3),  # all differ: earliest cluster wins
    (["7", "x", "x", "7"], [[0, 3], [1, 2]], (0, 3), 2 / 4),  # tie: earliest cluster
    ([None, None], [], (), 0.0),
]


@pytest.mark.parametrize("answers,clusters,majority,agreement", TABLE)
def test_majority_vote_table(answers, clusters, majority, agreement):
    vote = majority_vote(answers)
    assert cluster_answers(answers) == clusters
    assert vote.majority == majority
    assert vote.agreement == pytest.approx(agreement)
    assert vote.answer == (answers[majority[0]] if majority else None)


def test_best_index_argmax_and_ties():
    assert best_index([0.1, 0.7, 0.3]) == 1
    assert best_index([0.5, 0.9, 0.9]) == 1  # tie: earliest
    assert best_index([math.nan, -2.0, -1.0]) == 2  # NaN never wins
    assert best_index([math.nan, math.nan]) == 0
    with pytest.raises(ValueError):
        best_index([])


def _resp(qid: str, i: int, answer: str | None) -> dict:
    return {
        "id": f"{qid}-{i}",
        "question_id": qid,
        "question": qid,
        "response": f"r{i}",
        "answer": answer,
    }


def test_select_records_reward_agreement_and_majority_verdict():
    rows = [_resp("q1", 0, "5"), _resp("q1", 1, "6"), _resp("q1", 2, "5.0"), _resp("q2", 0, "1")]
    groups = group_by_question(rows)
    assert [g["question_id"] for g in groups] == ["q1", "q2"]
    chosen = select(groups[0]["responses"], [0.2, 0.9, 0.1])  # best is outside the majority
    assert chosen["id"] == "q1-1"
    assert chosen["scores"] == {"reward": 0.9, "agreement": pytest.approx(2 / 3)}
    assert chosen["verdicts"] == {"majority": "no"}
    assert chosen["majority_answer"] == "5"
    chosen = select(groups[0]["responses"], [0.2, 0.1, 0.3])
    assert (chosen["id"], chosen["verdicts"]["majority"]) == ("q1-2", "yes")
