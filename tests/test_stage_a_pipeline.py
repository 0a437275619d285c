"""gen-responses -> reward (LM judge) -> sft -> eval through the runner on a tiny random Llama
with the real SmolLM2 tokenizer; judge scores checked against transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_stage_a_fixtures import (
    fake_stage,
    question_rows,
    read_rows,
    run_config,
    save_tiny,
    smol_tokenizer,
    write_jsonl,
)

from sqjax.answer.judge import judge_prompt_ids
from sqjax.pipeline.runner import run_stage
from sqjax.stages.reward import dataset_path

QUESTIONS = [f"What is {a} + {a + 1}?" for a in range(8)]  # 8 rows: one packed row per device
BENCH = [
    {"problem": "1+1?", "solution": "\\boxed{2}", "level": "Level 1", "type": "Algebra"},
    {"problem": "2+2?", "solution": "\\boxed{4}", "level": "Level 2", "type": "Geometry"},
]
N = 2
JUDGE_TOKENS = 16


def _body(bench: str, drop: bool) -> str:
    return f"""
gen_responses: {{solver: tiny, n: {N}, max_tokens: 8, drop_no_answer: {str(drop).lower()}, shard_size: 4, batch_size: 8}}
reward: {{model: tiny, mode: judge, judge_max_tokens: {JUDGE_TOKENS}, batch_size: 8, shard_size: 3}}
sft: {{models: [{{model: tiny, lr: 1.0e-3}}], epochs: 2, pack_len: 64, batch_size: 8, max_steps: 2}}
eval: {{models: [tiny, "sft:tiny"], benchmarks: {{tiny_math: '{bench}'}}, max_tokens: 8, batch_size: 8}}
"""


def _hf_yes(model, ids: list[int], yes_id: int) -> float:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return float(torch.softmax(logits, -1)[yes_id])


@pytest.mark.slow  # ~40 s idle (compiles of the sampler, scorer and train step)
def test_answer_stages_on_tiny_model(tmp_path):
    hf = save_tiny(tmp_path / "tiny")
    tok = smol_tokenizer()
    bench = write_jsonl(tmp_path / "bench.jsonl", BENCH)
    questions = question_rows(QUESTIONS)
    run = tmp_path / "run"
    cfg = run_config(run, {"tiny": tmp_path / "tiny"}, _body(bench, drop=False))
    with fake_stage("filter", questions):
        run_stage(cfg, "filter")
        gen = run_stage(cfg, "gen-responses")
    responses = read_rows(run / "gen-responses")
    assert len(responses) == len(QUESTIONS) * N and gen["tokens"] > 0
    assert sorted({r["question_id"] for r in responses}) == sorted(q["id"] for q in questions)
    assert {r["solver"] for r in responses} == {"tiny"}
    assert all(0 < r["num_tokens"] <= 8 for r in responses)

    run_stage(cfg, "reward")
    kept = read_rows(run / "reward")
    assert len(kept) == len(QUESTIONS)
    yes_id = tok.encode("Yes", add_special_tokens=False)[0]
    for row in kept:
        group = [r for r in responses if r["question_id"] == row["question_id"]]
        ref = [
            _hf_yes(hf, judge_prompt_ids(tok, r["question"], r["response"], JUDGE_TOKENS), yes_id)
            for r in group
        ]
        assert row["id"] == group[int(np.argmax(ref))]["id"]
        assert row["scores"]["reward"] == pytest.approx(max(ref), rel=1e-3)
    exported = [json.loads(line) for line in dataset_path(run).read_text().splitlines()]
    assert [e["query"] for e in exported] == [r["question"] for r in kept]

    sft = run_stage(cfg, "sft")
    assert (run / "sft" / "artifacts" / "tiny" / "config.json").is_file()
    assert sft["metrics"]["train/tiny"]["steps"] == 2

    ev = run_stage(cfg, "eval")
    table = read_rows(run / "eval")
    assert [r["model"] for r in table] == ["tiny"] * 2 + ["sft:tiny"] * 2
    # Scores from known outputs: tests/test_stage_sft_eval_prompt.py. Here, on the real
    # model: golds read from the benchmark, sft:tiny prompted as trained (DART-Math alpaca).
    assert [r["gold"] for r in table] == ["2", "4"] * 2
    assert set(ev["metrics"]["scores"]) == {"tiny", "sft:tiny"}
    from sqjax.checkpoints.api import load_tokenizer

    exported = load_tokenizer(run / "sft" / "artifacts" / "tiny").chat_template
    assert "### Instruction:" in exported and tok.chat_template != exported
    assert (run / "eval" / "artifacts" / "accuracy.json").is_file()


@pytest.mark.slow
def test_gen_responses_drops_samples_without_final_answer(tmp_path):
    save_tiny(tmp_path / "tiny")
    cfg = run_config(
        tmp_path / "run", {"tiny": tmp_path / "tiny"}, _body("unused.jsonl", drop=True)
    )
    with fake_stage("filter", question_rows(QUESTIONS[:4])):
        run_stage(cfg, "filter")
        m = run_stage(cfg, "gen-responses")
    kept = read_rows(tmp_path / "run" / "gen-responses")
    assert len(kept) + m["drops"].get("no_final_answer", 0) == 4 * N
    assert m["drops"].get("no_final_answer", 0) > 0  # 8 random tokens almost never hold \boxed{}
    assert all(r["answer"] is not None for r in kept)
