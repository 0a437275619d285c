"""One bad row must not stop a stage (issue 17 items 6 and 7 and the fault-injection test).

- gen-responses on a tiny model: a question longer than the context is recorded as a failed
  row (id, reason, sizes) and the other questions are answered.
- A stage whose rows fail at random (exceptions, hangs past a per-row timeout) ends with every
  good row written and every bad row recorded with its reason, also across a rerun.
- An upstream stage that kept no rows: `run_stage` warns naming it; `run_pipeline` stops.
"""

from __future__ import annotations

import hashlib
import logging
import time

import pytest
from test_stage_a_fixtures import fake_stage, question_rows, read_rows, run_config, save_tiny

from sqjax.errors import SqjaxError
from sqjax.pipeline.runner import run_pipeline, run_stage
from sqjax.pipeline.stage import Stage
from sqjax.registry import parse_config
from sqjax.stages import STAGES


@pytest.mark.slow  # compiles the sampler for a tiny model
def test_over_long_prompt_is_a_recorded_drop_not_a_stage_failure(tmp_path):
    save_tiny(tmp_path / "tiny")  # max_position_embeddings 2048
    questions = question_rows(["What is 2 + 3?", "word " * 2100, "Compute 7 times 6."])
    body = "gen_responses: {solver: tiny, n: 2, max_tokens: 8, drop_no_answer: false}\n"
    cfg = run_config(tmp_path / "run", {"tiny": tmp_path / "tiny"}, body)
    with fake_stage("filter", questions):
        run_stage(cfg, "filter")
        m = run_stage(cfg, "gen-responses")
    rows = read_rows(tmp_path / "run" / "gen-responses")
    assert sorted({r["question_id"] for r in rows}) == sorted(
        [questions[0]["id"], questions[2]["id"]]
    )
    assert len(rows) == 4
    assert m["drops"] == {"prompt_too_long": 1}
    (failed,) = m["failed_rows"]["first"]
    assert failed["id"] == questions[1]["id"] and failed["reason"] == "prompt_too_long"
    assert "max_position_embeddings=2048" in failed["detail"]


N_ROWS = 60
ROW_TIMEOUT_S = 0.2


def _fate(row_id: str) -> str:
    """A fixed pseudo-random fate per row: ok (70%), raise (15%), hang (15%)."""
    x = hashlib.sha256(row_id.encode()).digest()[0] / 256
    return "raise" if x < 0.15 else "hang" if x < 0.30 else "ok"


def _flaky(row: dict, info) -> list[dict]:
    fate = _fate(row["id"])
    if fate == "raise":
        raise ValueError(f"bad row {row['id']}")
    if fate == "hang":
        time.sleep(ROW_TIMEOUT_S * 10)
    return [{**row, "double": row["x"] * 2}]


def _flaky_stage(ctx) -> None:
    items = [{"id": f"row-{i}", "x": i} for i in range(N_ROWS)]
    ctx.map_rows(items, _flaky, shard_size=7, row_timeout_s=ROW_TIMEOUT_S)


@pytest.fixture
def flaky():
    STAGES.register(
        Stage("flaky", "rows fail at random", section="seed_questions", run=_flaky_stage)
    )
    yield
    STAGES.unregister("flaky")


def test_rows_failing_at_random_are_recorded_and_good_rows_written(tmp_path, flaky):
    cfg = parse_config(f"run_dir: '{tmp_path / 'run'}'\n", "t.yaml")
    m = run_stage(cfg, "flaky")
    ids = [f"row-{i}" for i in range(N_ROWS)]
    fates = {i: _fate(i) for i in ids}
    assert set(fates.values()) == {"ok", "raise", "hang"}  # the fault mix is not empty
    rows = read_rows(tmp_path / "run" / "flaky")
    assert [r["id"] for r in rows] == [i for i in ids if fates[i] == "ok"]
    assert all(r["double"] == 2 * r["x"] for r in rows)
    failed = {f["id"]: f for f in m["failed_rows"]["first"]}
    assert m["failed_rows"]["count"] == len(failed) == N_ROWS - len(rows)
    for row_id, f in failed.items():
        expected = {"raise": "error", "hang": "timeout"}[fates[row_id]]
        assert f["reason"] == expected
        if expected == "error":
            assert f["detail"] == f"ValueError: bad row {row_id}"
    assert m["drops"] == {
        "error": sum(f == "raise" for f in fates.values()),
        "timeout": sum(f == "hang" for f in fates.values()),
    }
    assert m["finished"] and m["rows_out"] == len(rows)


def _dropping_filter(ctx) -> None:
    rows = [{"id": f"q{i}", "question": "?"} for i in range(5)]

    def drop_all(chunk, info):
        info.drop("language", len(chunk))
        return []

    ctx.map_shards(rows, drop_all, 5)


def test_empty_upstream_warns_and_run_stops(tmp_path, caplog):
    original = STAGES.get("filter")
    STAGES.register(
        Stage("filter", "keeps nothing", section="seed_questions", run=_dropping_filter)
    )
    try:
        cfg = parse_config(
            f"run_dir: '{tmp_path / 'run'}'\nmodels: {{m: {{path: /m}}}}\n"
            "skip_stages: [rate-questions]\ngen_responses: {solver: m}\nreward: {model: m}\n",
            "t.yaml",
        )
        with pytest.raises(
            SqjaxError,
            match=r"gen-responses: its input filter has 0 rows "
            r"\(filter kept 0 of 5 rows \(drops: \{'language': 5\}\)\); stopping",
        ):
            run_pipeline(cfg, first="filter", last="reward")
        assert not (tmp_path / "run" / "gen-responses").exists()
        assert "stage filter kept 0 of 5 rows" in caplog.text
        with caplog.at_level(logging.WARNING, logger="sqjax"):
            m = run_stage(cfg, "gen-responses")  # a single stage runs, loudly
        assert m["finished"] and m["rows_out"] == 0
        assert "its input filter has 0 rows (filter kept 0 of 5 rows" in caplog.text
        with caplog.at_level(logging.WARNING, logger="sqjax"):
            run_stage(cfg, "reward")
        assert "its input gen-responses has 0 rows (filter kept 0 of 5 rows" in caplog.text
    finally:
        STAGES.register(original)


def test_chat_replies_skip_prompts_longer_than_the_context(monkeypatch):
    """The judge/rewriter/solver calls of filter, difficulty, probes and qpo-rewrite sample
    only prompts that fit; an over-long one gets empty replies (prompt_too_long), which the
    stage's per-row rules then drop, instead of the sampler's error stopping the stage."""
    import types

    from test_stage_a_fixtures import smol_tokenizer

    from sqjax.question.sampling import chat_replies

    def fake_generate(prompts, params, **kwargs):
        if any(len(p) + params.max_tokens > 64 for p in prompts):
            raise SqjaxError("prompt + max_tokens exceeds max_position_embeddings")  # the engine
        out = types.SimpleNamespace(text=" Yes ", token_ids=[1], finish_reason="stop")
        return [types.SimpleNamespace(outputs=[out, out]) for _ in prompts]

    llm = types.SimpleNamespace(  # what chat_replies uses of an LLM handle
        config=types.SimpleNamespace(max_position_embeddings=64),
        tokenizer=smol_tokenizer(),
        generate=fake_generate,
    )
    replies = chat_replies(
        llm, ["Is 2+2=4?", "word " * 80, "Hi?"],
        temperature=0.0, max_tokens=8, batch_size=4, seed=0, n=2,
    )  # fmt: skip
    assert [[r["text"] for r in rs] for rs in replies] == [["Yes"] * 2, ["", ""], ["Yes"] * 2]
    assert {r["finish_reason"] for r in replies[1]} == {"prompt_too_long"}
