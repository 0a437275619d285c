"""Provenance helpers and the final export, read back with `datasets`."""

from __future__ import annotations

import hashlib
import json

import pytest

from sqjax.errors import SqjaxError
from sqjax.pipeline import records as rec


def test_record_id_is_a_stable_hash():
    digest = hashlib.sha256(json.dumps(["q", "gen-questions", 3, 7]).encode()).hexdigest()
    assert rec.record_id("q", "gen-questions", 3, 7) == "q-" + digest[:16]
    assert rec.record_id("q", "gen-questions", 3, 8) != rec.record_id("q", "gen-questions", 3, 7)


def test_responses_keep_their_questions_provenance():
    q = rec.with_verdict(rec.question_row("1+1?", "qpo:smol", "q-1"), "solvability", "yes")
    q = rec.with_score(q, "difficulty", 0.25)
    r = rec.with_score(rec.response_row(q, "\\boxed{2}", "smol", 0), "reward", 1.5)
    assert r["question_id"] == "q-1" and r["generator"] == "qpo:smol" and r["solver"] == "smol"
    assert r["scores"] == {"difficulty": 0.25, "reward": 1.5}
    assert r["verdicts"] == {"solvability": "yes"}
    assert q["scores"] == {"difficulty": 0.25}  # helpers copy, never mutate
    assert rec.response_row(q, "a", "smol", 1)["id"] != r["id"]


def test_export_loads_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    questions = [
        rec.question_row(f"What is {i}+{i}?", "gen-a" if i % 2 else "gen-b", f"q-{i}")
        for i in range(6)
    ]
    rows = [
        rec.with_score(rec.response_row(q, f"\\boxed{{{2 * i}}}", "solver", 0), "reward", i)
        for i, q in enumerate(questions)
    ]
    rows[2] = rec.with_verdict(rows[2], "solvability", "yes")  # not on every row
    path = tmp_path / "final.jsonl"
    assert rec.export_dataset(rows, path) == 6
    ds = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert ds.num_rows == 6
    assert ds.column_names == [
        "query",
        "response",
        "id",
        "question_id",
        "generator",
        "solver",
        "score_reward",
        "verdict_solvability",
    ]
    assert ds["query"] == [q["question"] for q in questions]
    assert ds["response"][3] == "\\boxed{6}" and ds["question_id"][3] == "q-3"
    assert ds["score_reward"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert ds["verdict_solvability"] == [None, None, "yes", None, None, None]


def test_export_rejects_rows_without_a_response(tmp_path):
    with pytest.raises(SqjaxError, match="row 'q-1' has no 'response'"):
        rec.export_dataset([rec.question_row("x", "g", "q-1")], tmp_path / "out.jsonl")
