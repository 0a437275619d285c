"""The probe's P(Yes) column: one forward pass per prompt gives P("Yes") / (P("Yes") + P("No")),
the same ratio as two separate next-token scorings of the judge's prompt."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from test_stage_a_fixtures import run_config, save_tiny

from sqjax.data.chat import chat_format, encoder
from sqjax.question import probe
from sqjax.question import solvability as sv
from sqjax.sampling.llm import LLM

QUESTIONS = ["What is 2 + 3?", "Tell me a story about a cat.", "Solve x^2 = 9 for x > 0."]


def test_p_yes_is_the_yes_no_ratio_of_the_judge(tmp_path, monkeypatch):
    save_tiny(tmp_path / "judge")
    llm = LLM(str(tmp_path / "judge"), dtype="float32")
    cfg = run_config(
        tmp_path / "run",
        {"judge": tmp_path / "judge"},
        "filter: {solvability: {judge: judge, batch_size: 2}}\n",
    )
    ctx = SimpleNamespace(config=cfg, log=logging.getLogger("test"))
    monkeypatch.setattr(probe, "llm_for", lambda ctx, name: llm)
    got = probe._p_yes(ctx, QUESTIONS)

    fmt, encode = chat_format(llm.tokenizer, cfg.filter.solvability.system), encoder(llm.tokenizer)
    prompts = [encode(fmt.chat_prompt(sv.judge_prompt(sv.IS_MATH_DIRECT, q))) for q in QUESTIONS]
    yes, no = llm.yes_probability(prompts, ("Yes",)), llm.yes_probability(prompts, ("No",))
    assert got == pytest.approx([y / (y + n) for y, n in zip(yes, no)], rel=1e-5)
    assert len(set(got)) == 3  # the questions' verdicts differ: not a constant
