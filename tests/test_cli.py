"""The `sqjax` command through Click's CliRunner: help, listing, errors, --set, run, demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sqjax.cli import cli
from sqjax.pipeline.stage import Stage
from sqjax.stages import STAGES

PIPELINE = [
    "seed-questions",
    "qft",
    "qpo-sample",
    "qpo-rewrite",
    "qpo-pairs",
    "qpo",
    "gen-questions",
    "difficulty",
    "filter",
    "rate-questions",
    "gen-responses",
    "reward",
    "sft",
    "eval",
]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_line_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def emit(ctx) -> None:
    n = ctx.section.num_questions
    ctx.map_shards(
        [{"i": i} for i in range(n)],
        lambda rows, info: [{**r, "t": ctx.section.temperature} for r in rows],
        3,
    )


def double(ctx) -> None:
    ctx.map_shards(ctx.read_stage("toy-a"), lambda rows, info: rows + rows, 4)


@pytest.fixture
def toy(tmp_path):
    STAGES.register(Stage("toy-a", "emits rows", section="gen_questions", run=emit))
    STAGES.register(
        Stage("toy-b", "doubles rows", inputs=("toy-a",), section="qpo_pairs", run=double)
    )
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"run_dir: {tmp_path / 'run'}\ngen_questions: {{num_questions: 5}}\n"
        "skip_stages: " + json.dumps(PIPELINE) + "\n"
    )
    yield config
    STAGES.unregister("toy-a")
    STAGES.unregister("toy-b")


@pytest.mark.parametrize("command", [[], ["stages"], ["stage"], ["run"], ["demo"], ["report"]])
def test_help_everywhere(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage: " in result.output


def test_stages_lists_the_pipeline_in_order():
    result = invoke("stages")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == PIPELINE
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # every stage described


def test_unknown_stage_suggests_the_nearest(tmp_path):
    line = one_line_error(invoke("stage", "gen-question", "--config", str(tmp_path / "x.yaml")))
    assert "unknown stage 'gen-question'; did you mean 'gen-questions'?" in line


def test_bad_config_key_and_type(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("gen_questions: {top_p: high}\n")
    line = one_line_error(invoke("stage", "gen-questions", "--config", str(config)))
    assert f"{config}: key 'gen_questions.top_p': expected float, got 'high'" in line
    config.write_text("gen_question: {}\n")
    line = one_line_error(invoke("stage", "gen-questions", "--config", str(config)))
    assert f"{config}: unknown key 'gen_question'; did you mean 'gen_questions'?" in line


def test_set_file_is_an_overlay_named_in_its_errors(tmp_path):
    """`--set-file FILE` is `--config FILE` after the first: deep-merged over it, and an
    error names the overlay and what it lies over."""
    base, top = tmp_path / "base.yaml", tmp_path / "top.yaml"
    base.write_text("gen_questions: {top_p: 0.9}\n")
    top.write_text("gen_questions: {temperature: hot}\n")
    args = ("stage", "gen-questions", "--config", str(base), "--set-file", str(top))
    line = one_line_error(invoke(*args))
    assert f"{top} (over {base}): key 'gen_questions.temperature': expected float" in line


def test_usage_errors_are_one_line():
    line = one_line_error(invoke("stage", "qft"), code=2)
    assert "--config" in line and "sqjax stage --help" in line
    one_line_error(invoke("frobnicate"), code=2)


def test_set_overrides_reach_the_stage(toy, tmp_path):
    result = invoke(
        "stage",
        "toy-a",
        "--config",
        str(toy),
        "--set",
        "gen_questions.temperature=0.5",
        "--set",
        "gen_questions.num_questions=4",
    )
    assert result.exit_code == 0, result.output
    rows = [
        json.loads(x)
        for p in sorted((tmp_path / "run" / "toy-a").glob("part-*.jsonl"))
        for x in p.read_text().splitlines()
    ]
    assert rows == [{"i": i, "t": 0.5} for i in range(4)]
    line = one_line_error(
        invoke("stage", "toy-a", "--config", str(toy), "--set", "gen_questions.num_questions=many")
    )
    assert "key 'gen_questions.num_questions': expected int" in line
    line = one_line_error(
        invoke("stage", "toy-a", "--config", str(toy), "--set", "gen_questions.temperature=0.9")
    )
    assert (
        "(changed: gen_questions.num_questions, gen_questions.temperature)" in line
        and "--restart" in line
    )
    result = invoke(
        "stage",
        "toy-a",
        "--config",
        str(toy),
        "--restart",
        "--set",
        "gen_questions.temperature=0.9",
        "--set",
        "gen_questions.num_questions=4",
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "run").glob("toy-a.old-*"))) == 1


def test_run_in_order_skips_finished_and_writes_report(toy, tmp_path):
    run = tmp_path / "run"
    result = invoke("run", "--config", str(toy), "--to", "toy-a")
    assert result.exit_code == 0, result.output
    assert not (run / "toy-b").exists()
    before = (run / "toy-a" / "manifest.json").read_text()
    result = invoke("run", "--config", str(toy), "--from", "toy-a")
    assert result.exit_code == 0, result.output
    assert (run / "toy-a" / "manifest.json").read_text() == before  # finished: not rerun
    assert json.loads((run / "toy-b" / "manifest.json").read_text())["rows_out"] == 10
    assert (run / "report.md").is_file() and "toy-b" in (run / "report.md").read_text()
    line = one_line_error(invoke("run", "--config", str(toy), "--from", "toy-b", "--to", "toy-a"))
    assert "--from toy-b comes after --to toy-a" in line


def test_demo_runs_the_packaged_config(monkeypatch, tmp_path):
    from sqjax.pipeline import report, runner

    seen = {}
    monkeypatch.setattr(runner, "run_pipeline", lambda cfg, a, b, d: seen.update(cfg=cfg, d=d))
    monkeypatch.setattr(report, "build_report", lambda d, order: tmp_path / "report.md")
    result = invoke("demo", "--out", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    assert seen["d"] == str(tmp_path / "demo")
    assert seen["cfg"].models["smol"].path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_cli_import_is_light():
    code = (
        "import sys, sqjax.cli; heavy = {'jax', 'yaml', 'matplotlib', 'tqdm', 'numpy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
