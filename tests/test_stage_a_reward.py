"""Stage reward with a score-head model: scores match transformers' LlamaForSequenceClassification
on the same chat, the kept response is the argmax per question, too-long pairs are dropped,
and the exported data set loads with `datasets`."""

from __future__ import annotations

import datasets
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
