"""The per-process handle cache of sqjax.pipeline.models: stages share a model's handle; on
devices with a memory limit a stage loading a model drops the handles it has not used."""

from __future__ import annotations

import types

import pytest

from sqjax.pipeline import models
from sqjax.pipeline.config import RunSettings
from sqjax.sampling import llm as llm_module


class Stub:
    def __init__(self, path, tokenizer, **kw):
        self.path = path


def ctx(stage: str):
    entry = lambda ref: types.SimpleNamespace(path=f"/models/{ref}", dtype="bfloat16")
    return types.SimpleNamespace(name=stage, model_entry=entry, config=RunSettings())


@pytest.fixture
def cache(monkeypatch):
    monkeypatch.setattr(llm_module, "LLM", Stub)
    monkeypatch.setattr(models, "_tokenizer", lambda path: None)
    models.forget()
    yield
    models.forget()


@pytest.mark.parametrize("limited", [True, False])
def test_a_stage_keeps_what_it_uses_and_drops_the_rest_where_memory_is_limited(
    cache, monkeypatch, limited
):
    monkeypatch.setattr(models, "_memory_limited", lambda: limited)
    solver = models.llm_for(ctx("difficulty"), "solver")
    scorer = models.llm_for(ctx("difficulty"), "scorer")  # a stage's own models stay together
    assert models.llm_for(ctx("difficulty"), "solver") is solver
    assert set(models._HANDLES.values()) == {solver, scorer}
    assert models.llm_for(ctx("filter"), "scorer") is scorer  # cached: nothing dropped
    reward = models.llm_for(ctx("reward"), "reward")  # a new load
    kept = set(models._HANDLES.values())
    if limited:  # only what this stage used; the solver is read again when asked for
        assert kept == {reward}
        assert models.llm_for(ctx("eval"), "solver") is not solver
    else:  # CPU: every handle stays for the run
        assert kept == {solver, scorer, reward}
        assert models.llm_for(ctx("eval"), "solver") is solver


def test_cpu_reports_no_memory_limit():
    assert not models._memory_limited()
