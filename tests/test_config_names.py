"""Names that become paths (issue 17 item 2): every model name, stage ref and benchmark name is
checked when the config is loaded, before any stage runs, and a training stage's publish step
never deletes or moves anything outside its own stage directory."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from sqjax.errors import SqjaxError
from sqjax.pipeline.config import ModelEntry
from sqjax.pipeline.context import StageContext
from sqjax.registry import RunConfig, parse_config
from sqjax.stages.sft import SftConfig, SftModel

BAD_NAMES = ["../../../victim", "/abs/victim", "a/b", "..", ".hidden", "sp ace", "", "x\x00y"]


def _config(name: str, where: str) -> str:
    models = f'models:\n  "{name}": {{path: /m}}\n  ok: {{path: /m}}\n'
    uses = {
        "models": f'sft: {{models: [{{model: "{name}"}}]}}\n',
        "generators": 'gen_questions: {generators: ["../qpo:ok"]}\n',
        "benchmarks": f'eval: {{models: [ok], benchmarks: {{"{name}": /b.jsonl}}}}\n',
    }
    return models + uses[where] if where == "models" else "models: {ok: {path: /m}}\n" + uses[where]


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n])
def test_model_names_that_are_not_plain_identifiers_are_refused(name: str) -> None:
    with pytest.raises(SqjaxError) as e:
        parse_config(_config(name.replace("\x00", "\\0"), "models"), "run.yaml")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("run.yaml: key 'models'")
    assert "letters, digits" in message


def test_stage_refs_and_benchmark_names_are_checked() -> None:
    with pytest.raises(SqjaxError, match=r"key 'gen_questions.generators\[0\]'.*unknown stage"):
        parse_config(_config("", "generators"), "run.yaml")
    with pytest.raises(SqjaxError, match=r"key 'eval.benchmarks'.*'\.\./evil'.*letters, digits"):
        parse_config(_config("../evil", "benchmarks"), "run.yaml")


def test_set_override_names_are_checked_too() -> None:
    with pytest.raises(SqjaxError, match=r"--set models.*key 'models'.*'\.\./x'"):
        parse_config("models: {ok: {path: /m}}\n", "run.yaml", ['models={"../x": {path: /m}}'])


def test_plain_names_pass() -> None:
    cfg = parse_config("models: {Qwen2.5-Math_7B: {path: /m}, smol: {path: /m}}\n", "run.yaml")
    assert set(cfg.models) == {"Qwen2.5-Math_7B", "smol"}


def test_publish_never_deletes_outside_its_stage(tmp_path: Path, monkeypatch) -> None:
    """A config built without the loader (a notebook) still cannot make the publish step
    delete or replace a directory outside RUN/<stage>/."""
    from sqjax.pipeline import training as tr
    from sqjax.training import api

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    run_dir = tmp_path / "run" / "nested"
    name = "../../../victim"
    cfg = RunConfig(
        run_dir=str(run_dir),
        models={name: ModelEntry("/m")},
        sft=SftConfig(models=[SftModel(name)]),
    )
    ctx = StageContext("sft", cfg, cfg.sft, run_dir, {}, ("reward",))
    export = tmp_path / "export"
    export.mkdir()
    (export / "config.json").write_text("{}")
    fake = types.SimpleNamespace(hf_dir=str(export), steps=1, final_loss=0.5)
    monkeypatch.setattr(api, "train", lambda cfg: fake)
    with pytest.raises(SqjaxError, match="outside"):
        tr.train_and_publish(ctx, name, cfg=None)
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (export / "config.json").is_file()
