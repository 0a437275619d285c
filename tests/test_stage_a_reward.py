"""Stage reward with a score-head model: scores match transformers' LlamaForSequenceClassification
on the same chat, the kept response is the argmax per question, too-long pairs are dropped,
and the exported data set loads with `datasets`."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from test_stage_a_fixtures import (
    QUESTIONS,
    fake_stage,
    question_rows,
    read_rows,
    run_config,
    save_tiny,
    smol_tokenizer,
    write_jsonl,
)

from sqjax.pipeline.records import response_row
from sqjax.pipeline.runner import run_stage
from sqjax.stages.reward import dataset_path

ANSWERS = [
    ["So 2 + 3 = 5. \\boxed{5}", "Adding gives \\boxed{5.0}", "\\boxed{6}"],
    ["7 * 6 = 42, \\boxed{42}", "\\boxed{13}", "Seven sixes: \\boxed{42}"],
    ["x = 14, \\boxed{14}", "x = " + "1 + " * 120 + "13, \\boxed{14}", "\\boxed{-6}"],
]
MAX_LEN = 160


def _responses() -> list[dict]:
    rows = []
    for q, answers in zip(question_rows(), ANSWERS):
        for i, text in enumerate(answers):
            rows.append(
                response_row(q, text, "solver", i, answer=text.rsplit("{", 1)[1].rstrip("}"))
            )
    return rows


def _hf_score(model, tok, question: str, response: str) -> tuple[float, int]:
    chat = [{"role": "user", "content": question}, {"role": "assistant", "content": response}]
    text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=False)
    ids = tok.encode(text, add_special_tokens=False)
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids])).logits[0, 0]), len(ids)


@pytest.mark.slow  # ~15 s idle, ~50 s on a busy 2-core machine
def test_reward_model_scores_match_hf_and_best_is_argmax(tmp_path):
    hf = save_tiny(tmp_path / "rm", "LlamaForSequenceClassification", seed=1)
    tok = smol_tokenizer()
    responses = _responses()
    cfg = run_config(
        tmp_path / "run",
        {"rm": tmp_path / "rm"},
        f"reward: {{model: rm, mode: reward_model, max_len: {MAX_LEN}, batch_size: 4, shard_size: 2}}\n",
    )
    with fake_stage("gen-responses", responses):
        run_stage(cfg, "gen-responses")
        manifest = run_stage(cfg, "reward")
    kept = read_rows(tmp_path / "run" / "reward")
    assert [r["question_id"] for r in kept] == [q["id"] for q in question_rows()]
    too_long = 0
    for row in kept:
        group = [r for r in responses if r["question_id"] == row["question_id"]]
        ref = [_hf_score(hf, tok, r["question"], r["response"]) for r in group]
        fits = [(s if n <= MAX_LEN else -np.inf) for s, n in ref]
        too_long += sum(n > MAX_LEN for _, n in ref)
        best = int(np.argmax(fits))
        assert row["id"] == group[best]["id"]
        assert row["scores"]["reward"] == pytest.approx(ref[best][0], abs=1e-4)
        assert row["num_candidates"] == 3
    assert too_long == 1
    assert manifest["drops"] == {"over_max_len": 1}
    ds = datasets.load_dataset(
        "json", data_files=str(dataset_path(tmp_path / "run")), split="train"
    )
    assert ds.num_rows == 3
    assert ds["query"] == [q["question"] for q in question_rows()]
    assert ds["response"] == [r["response"] for r in kept]
    assert ds["score_reward"] == pytest.approx([r["scores"]["reward"] for r in kept])
    assert ds["score_agreement"] == pytest.approx([2 / 3, 2 / 3, 2 / 3])  # the long one counts
    assert set(ds["verdict_majority"]) <= {"yes", "no"}


LONG = "a train leaves the station at nine and travels sixty miles per hour for three hours"
QUOTES = f"{LONG}, so \\boxed{{180}}"


def _clean_ratio_run(tmp_path, name, questions, answers, monkeypatch, fields="[query]") -> dict:
    """The reward stage (model stubbed: the first answer of each question scores highest) on
    `questions` x `answers`, against two one-question eval sets; returns its manifest."""
    from sqjax.stages import reward

    monkeypatch.setattr(reward, "llm_for", lambda ctx, model: None)
    scores = lambda mode, llm, qs, rs, **kw: [-float(i % len(answers)) for i in range(len(qs))]
    monkeypatch.setattr(reward, "pair_scores", scores)
    a = write_jsonl(tmp_path / "a.jsonl", [{"question": LONG}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"problem": "What is 1+1?"}])
    responses = [
        response_row(q, text, "solver", i)
        for q in question_rows(questions)
        for i, text in enumerate(answers)
    ]
    body = (
        f"reward: {{model: rm, mode: judge, clean_ratio: {{fields: {fields}}}}}\n"
        f"eval: {{benchmarks: {{a: '{a}', b: '{b}'}}}}\n"
    )
    cfg = run_config(tmp_path / name, {"rm": tmp_path / "rm"}, body)
    with fake_stage("gen-responses", responses):
        run_stage(cfg, "gen-responses")
        return run_stage(cfg, "reward")


def test_final_data_clean_ratio_drops_for_a_planted_eval_question(tmp_path, monkeypatch):
    """Table 6 is measured on the final data: one planted row quoting an eval question lowers
    the clean ratio of that eval set only, in the manifest and in the report's table."""
    from sqjax.pipeline.report import build_report

    answers = ["\\boxed{5}", QUOTES]  # the losing answer is not in the final data
    clean = _clean_ratio_run(tmp_path, "clean", QUESTIONS, answers, monkeypatch)
    per = clean["metrics"]["clean_ratio"]["benchmarks"]
    assert [per[k]["clean_ratio"] for k in "ab"] == [1.0, 1.0]
    planted = [*QUESTIONS, f"Q: {LONG}. How far does it go?"]
    got = _clean_ratio_run(tmp_path, "planted", planted, answers, monkeypatch)
    got = got["metrics"]["clean_ratio"]
    assert got["rows"] == 4 and got["fields"] == ["query"] and got["filtered"] is False
    assert got["benchmarks"]["a"]["contaminated"] == 1
    assert got["benchmarks"]["a"]["clean_ratio"] == 0.75
    assert got["benchmarks"]["a"]["matches"][0]["eval_id"] == "a-00001"
    assert got["benchmarks"]["b"]["clean_ratio"] == 1.0
    report = build_report(tmp_path / "planted").read_text()
    assert "The final data set, RUN/reward/dataset.jsonl (4 rows" in report
    assert "| a | 1 | 1 | 75.0 |" in report and "| b | 1 | 0 | 100.0 |" in report


@pytest.mark.parametrize(
    "answers, fields, contaminated",
    [
        ([QUOTES, "\\boxed{5}"], "[query]", 0),
        ([QUOTES, "\\boxed{5}"], "[query, response]", 3),
        (["\\boxed{5}", QUOTES], "[query, response]", 0),
    ],
)
def test_final_data_clean_ratio_reads_kept_responses_when_asked(
    tmp_path, monkeypatch, answers, fields, contaminated
):
    """A kept response quoting an eval question counts only when `response` is measured; a
    response the reward stage did not keep never counts."""
    got = _clean_ratio_run(tmp_path, "r", QUESTIONS, answers, monkeypatch, fields)
    assert got["metrics"]["clean_ratio"]["benchmarks"]["a"]["contaminated"] == contaminated
