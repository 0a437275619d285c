"""The question-quality measurement's pure parts: the difficulty level read from Figure 13
replies, the per-source summary, and the clean ratio (Table 6) and its report table."""

from __future__ import annotations

import json

import pytest

from sqjax.question.filters import clean_ratios
from sqjax.question.quality import LEVELS, difficulty_level, source_kind, summarize


@pytest.mark.parametrize(
    "reply, want",
    [
        ('{ "intent": "x", "knowledge": "y", "difficulty": "medium" }', "medium"),
        ('```json\n{"intent": "...", "difficulty": "Very Hard"}\n```', "very hard"),
        ("The intent is ...\n**Difficulty:** easy", "easy"),
        ('{"difficulty": "[very easy]"}', "very easy"),
        ("'difficulty': 'hard'", "hard"),
        # prose, as SmolLM2-135M wrote it in the demo
        ("The difficulty level is easy.\nThe user query is to find x.", "easy"),
        ('The difficulty level is "Very easy"\nThe user query is ...', "very easy"),
        ("The difficulty is that the problem has no numbers.", None),
        # the template copied back, or no level: None
        ('{"difficulty": "[very easy/easy/medium/hard/very hard]"}', None),
        ("It is a hard problem.", None),
        ('{"difficulty": "moderate"}', None),
        ("", None),
        # the last difficulty field wins
        ('Draft: "difficulty": "easy"\nFinal: {"difficulty": "hard"}', "hard"),
    ],
)
def test_difficulty_level(reply, want):
    assert difficulty_level(reply) == want


def test_summarize_shares_and_parse_rates():
    rows = [
        {"solvable": "yes", "solvable_lax": "yes", "difficulty": "easy"},
        {"solvable": "no", "solvable_lax": "yes", "difficulty": "hard"},
        {"solvable": "none", "solvable_lax": "no", "difficulty": None},
        {"solvable": "yes", "solvable_lax": "yes", "difficulty": "easy"},
    ]
    s = summarize(rows)
    assert s["n"] == 4 and s["solvable_share"] == 0.5 and s["solvable_share_lax"] == 0.75
    assert s["solvable_parse_rate"] == 0.75 and s["difficulty_parse_rate"] == 0.75
    assert s["difficulty"] == {l: {"easy": 0.5, "hard": 0.25}.get(l, 0.0) for l in LEVELS}
    assert summarize([])["n"] == 0


def test_source_kinds():
    assert source_kind("qpo-sample", "qft:m") == "raw QFT output"
    assert source_kind("gen-questions", "qpo:m") == "QPO output"
    assert source_kind("gen-questions", "m") == "generator output"
    assert source_kind("filter", "qpo:m") == "filtered"


def test_clean_ratio_per_eval_set(tmp_path):
    long = "a train leaves the station at nine and travels sixty miles per hour for three hours"
    (tmp_path / "a.jsonl").write_text(json.dumps({"question": long}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"problem": "What is 1+1?"}) + "\n")
    rows = [
        {"id": "1", "question": "Q: " + long + ". How far?"},  # shares 13-grams with a
        {"id": "2", "question": "what is 1+1?"},  # equals b's short item
        {"id": "3", "question": "Something else entirely."},
        {"id": "4", "question": "Another clean question about apples."},
    ]
    bench = {"a": str(tmp_path / "a.jsonl"), "b": str(tmp_path / "b.jsonl")}
    got = clean_ratios(rows, bench, 13)
    a_gram = "a train leaves the station at nine and travels sixty miles per hour"
    assert got == {
        "a": {
            "eval_questions": 1,
            "contaminated": 1,
            "clean_ratio": 0.75,
            "matches": [{"id": "1", "field": "question", "eval_id": "a-00001", "ngram": a_gram}],
        },
        "b": {
            "eval_questions": 1,
            "contaminated": 1,
            "clean_ratio": 0.75,
            "matches": [
                {"id": "2", "field": "question", "eval_id": "b-00001", "ngram": "what is 1 1"}
            ],
        },
    }


def test_report_sections():
    from sqjax.pipeline.quality_report import clean_ratio_section, quality_section

    summary = summarize(
        [
            {"solvable": "yes", "solvable_lax": "yes", "difficulty": "easy"},
            {"solvable": "none", "solvable_lax": "yes", "difficulty": None},
        ]
    )
    manifests = {
        "rate-questions": {
            "metrics": {
                "question_quality": {
                    "judge": "gpt-4o",
                    "sources": {
                        "qpo-sample (qft:m)": {"kind": "raw QFT output", **summary},
                    },
                }
            }
        },
        "filter": {
            "metrics": {
                "clean_ratio": {
                    "ngram": 13,
                    "rows": 40,
                    "filtered": False,
                    "benchmarks": {
                        "gsm8k": {"eval_questions": 1319, "contaminated": 1, "clean_ratio": 0.975}
                    },
                }
            }
        },
    }
    quality = "\n".join(quality_section(manifests))
    assert "judge gpt-4o" in quality
    row = "| qpo-sample (qft:m) | raw QFT output | 2 | 50.0 | 100.0 | 0.0 | 50.0 | 0.0 | 0.0 | 0.0 | 50.0 | 50.0 |"
    assert row in quality
    clean = "\n".join(clean_ratio_section(manifests))
    assert "| gsm8k | 1,319 | 1 | 97.5 |" in clean and "measured, did not filter" in clean
    assert "The filter stage's kept questions (40 rows" in clean and "final data" not in clean
    final = {"ngram": 13, "rows": 9, "fields": ["query"], "filtered": True, "benchmarks": {}}
    final["benchmarks"]["math"] = {"eval_questions": 5000, "contaminated": 3, "clean_ratio": 2 / 3}
    manifests["reward"] = {"metrics": {"clean_ratio": final}}
    clean = "\n".join(clean_ratio_section(manifests))
    assert clean.index("The final data set") < clean.index("The filter stage's kept questions")
    assert "(9 rows; 13-gram overlap of query; decontamination filtered the questions)" in clean
    assert "| math | 5,000 | 3 | 66.7 |" in clean
    assert quality_section({}) == [] and clean_ratio_section({}) == []
