"""A stage's fingerprint covers the other stages' settings it reads: they are declared
(`config_deps`), a change to one stops the finished stage from being reused, and a read of an
undeclared one is an error (`ctx.config` is a StageView)."""

from __future__ import annotations

import pytest

from sqjax.errors import SqjaxError
from sqjax.pipeline.manifest import config_hash, stage_config
from sqjax.pipeline.runner import run_stage
from sqjax.pipeline.stage import Stage
from sqjax.registry import parse_config
from sqjax.stages import STAGES


@pytest.fixture
def toy_stage():
    """Registers a stage built by the test; unregisters it afterwards."""
    names = []

    def register(name: str, run, config_deps: tuple[str, ...] = ()) -> None:
        STAGES.register(Stage(name, "toy", run, section="qft", config_deps=config_deps))
        names.append(name)

    yield register
    for name in names:
        STAGES.unregister(name)


def test_a_changed_dependency_reruns_the_stage(tmp_path, toy_stage):
    seen = []

    def probe_like(ctx) -> None:  # reads another stage's settings, as qft's probe does
        seen.append((ctx.config.qpo_sample.temperature, ctx.config.filter.solvability.max_tokens))
        ctx.map_shards([{"id": "a"}], lambda rows, info: rows, 1)

    toy_stage("toy-probe", probe_like, ("qpo_sample", "filter.solvability"))
    cfg = parse_config("seed: 1", "c.yaml")
    run_stage(cfg, "toy-probe", run_dir=tmp_path)
    run_stage(cfg, "toy-probe", run_dir=tmp_path)  # finished, same fingerprint: reused
    assert seen == [(1.0, 2048)]

    changed = parse_config("seed: 1\nqpo_sample: {temperature: 0.5}", "c.yaml")
    with pytest.raises(SqjaxError, match=r"different config \(changed: qpo_sample.temperature\)"):
        run_stage(changed, "toy-probe", run_dir=tmp_path)
    run_stage(changed, "toy-probe", run_dir=tmp_path, restart=True)
    assert seen == [(1.0, 2048), (0.5, 2048)]


def test_an_undeclared_read_is_an_error(tmp_path, toy_stage):
    def sneaky(ctx) -> None:
        assert ctx.config.seed == 1 and ctx.config.qft is ctx.section  # run-wide and own: open
        assert ctx.config.filter.language.enabled  # declared
        _ = ctx.config.filter.solvability.judge  # not declared

    toy_stage("toy-sneaky", sneaky, ("filter.language",))
    cfg = parse_config("seed: 1", "c.yaml")
    message = "stage toy-sneaky reads setting 'filter.solvability' without declaring it"
    with pytest.raises(ValueError, match=message):
        run_stage(cfg, "toy-sneaky", run_dir=tmp_path)


@pytest.mark.parametrize(
    "stage,override",
    [
        ("qft", "qpo_sample: {top_p: 0.9}"),  # its probe samples with qpo_sample
        ("qft", "filter: {solvability: {max_tokens: 64}}"),  # and judges with this
        ("qpo", "filter: {solvability: {max_tokens: 64}}"),
        ("filter", "difficulty: {max_len: 64}"),  # the scorer's batches
        ("eval", "sft: {instruction: Think.}"),  # the prompt of sft:<m> models
    ],
)
def test_shipped_stages_declare_what_they_read(stage, override):
    spec = STAGES.get(stage)
    base, changed = parse_config("seed: 1", "c.yaml"), parse_config(override, "c.yaml")
    assert config_hash(stage_config(base, spec)) != config_hash(stage_config(changed, spec))
