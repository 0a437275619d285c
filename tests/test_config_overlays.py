"""Config overlays (`--config A --config B`), per-stage meshes, the run-wide attention
section, and `sqjax plan --write-overrides`: the overlay it writes applies and plans clean."""

import json

import pytest
import yaml

from sqjax.errors import SqjaxError
from sqjax.pipeline.config import merge, stage_mesh
from sqjax.registry import load_config, parse_config


def _write(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_an_overlay_deep_merges_and_its_errors_name_it(tmp_path):
    base = _write(tmp_path / "a.yaml", {"seed": 3, "qft": {"batch_size": 8, "lr": 1e-5}})
    top = _write(
        tmp_path / "b.yaml",
        {"qft": {"batch_size": 4}, "stage_mesh": {"qft": {"fsdp": -1, "data": 1}}},
    )
    cfg = load_config([base, top])
    assert (cfg.seed, cfg.qft.batch_size, cfg.qft.lr) == (3, 4, 1e-5)
    assert stage_mesh(cfg, "qft") == (1, -1, 1) and stage_mesh(cfg, "sft") == (-1, 1, 1)
    assert load_config(base).qft.batch_size == 8  # one file as before
    bad = _write(tmp_path / "bad.yaml", {"qft": {"batch_size": "many"}})
    with pytest.raises(SqjaxError, match=r"bad\.yaml \(over .*a\.yaml\).*qft\.batch_size"):
        load_config([base, bad])
    assert merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": 5}, "d": [2]}) == {
        "a": {"b": 5, "c": 2},
        "d": [2],
    }


def test_stage_mesh_and_attention_are_checked_with_their_key():
    with pytest.raises(SqjaxError, match="stage_mesh: unknown stage 'sfft'"):
        parse_config("stage_mesh: {sfft: {data: 1}}", "c.yaml")
    with pytest.raises(SqjaxError, match=r"c\.yaml: key 'attention\.kernel': attention='flash' is not"):
        parse_config("attention: {kernel: flash}", "c.yaml")
    with pytest.raises(SqjaxError, match=r"key 'attention\.block': block=200 must be a positive"):
        parse_config("attention: {block: 200}", "c.yaml")
    cfg = parse_config("attention: {kernel: xla, block: 256}", "c.yaml")
    assert cfg.attention.settings() == {"attention": "xla", "attention_block": 256}


def test_the_attention_section_reaches_plans_models(tmp_path):
    from test_plan import _config

    from sqjax.plan.abstract import model_config

    cfg = parse_config(_config(tmp_path, attention={"kernel": "xla", "block": 1024}), "c.yaml")
    got = model_config(cfg, "tiny")
    assert (got.attention, got.attention_block) == ("xla", 1024)


@pytest.mark.slow  # three tiny v5e-4 train-step compiles, ~20 s
def test_plan_writes_an_overlay_that_makes_it_fit(tmp_path):
    pytest.importorskip("libtpu", reason="needs the TPU extra: pip install -e '.[tpu]'")
    from click.testing import CliRunner
    from test_plan import _config

    from sqjax.cli import cli

    run = tmp_path / "run.yaml"
    qft = {"models": ["tiny"], "batch_size": 512, "seq_len": 4096, "remat": "none"}
    run.write_text(_config(tmp_path, qft=qft))
    overlay = tmp_path / "v5e-4.yaml"
    args = ["plan", "--config", str(run), "--topology", "v5e-4", "--stage", "qft"]
    res = CliRunner().invoke(cli, [*args, "--fix-tries", "4", "--write-overrides", str(overlay)])
    assert res.exit_code == 1 and f"overrides to {overlay}" in res.output, res.output
    written = yaml.safe_load(overlay.read_text())
    assert written["stage_mesh"]["qft"]["fsdp"] == -1 or written["qft"]["accum_steps"] > 1
    assert "# qft: train of tiny needs" in overlay.read_text()
    out = tmp_path / "plan.json"
    layered = ["--config", str(overlay), "--json", str(out), "--fix-tries", "0"]
    res = CliRunner().invoke(cli, [*args, *layered, "--write-overrides", str(overlay)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["programs"][0]["figures"]["fits"]
    assert yaml.safe_load(overlay.read_text()) == written  # written again, unchanged
