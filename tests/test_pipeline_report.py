"""The run report: tables, plots, histograms of declared stats, eval scores, cost table."""

from __future__ import annotations

import pytest

from sqjax.errors import SqjaxError
from sqjax.pipeline.report import build_report
from sqjax.pipeline.runner import run_stage
from sqjax.pipeline.stage import Stage
from sqjax.registry import parse_config
from sqjax.stages import STAGES


def questions(ctx) -> None:
    def fn(rows, info):
        info.add_tokens(10 * len(rows))
        info.drop("not_ascii", 1)
        info.fail(f"q{rows[-1]['i']}", "prompt_too_long", "prompt 9 + max_tokens 9 | 16")
        return [{**r, "difficulty": r["i"] / 10} for r in rows[1:-1]]

    ctx.map_shards([{"i": i, "question": f"q{i}"} for i in range(10)], fn, 5)
    ctx.declare_row_stats("difficulty")


def evaluate(ctx) -> None:
    ctx.set_metric("scores", {"sft:smol": {"gsm8k": 0.25, "math": 0.5}})
    probe = {
        "n": 8,
        "judge": "smol",
        "math_cues_share": 0.125,
        "math_share": 0.0,
        "solvable_share": None,
    }
    ctx.set_metric(
        "question_probe", {"smol": probe, "qft:smol": {**probe, "math_cues_share": 0.75}}
    )
    ctx.set_metric("heldout", {"spearman": 0.42})


@pytest.fixture
def run_dir(tmp_path):
    STAGES.register(Stage("toy-q", "questions", section="gen_questions", run=questions))
    real_eval = STAGES.get("eval")
    STAGES.register(Stage("eval", "evaluate", run=evaluate))  # in the same place
    cfg = parse_config("seed: 1", "c.yaml")
    run_stage(cfg, "toy-q", run_dir=tmp_path)
    run_stage(cfg, "eval", run_dir=tmp_path)
    yield tmp_path
    STAGES.unregister("toy-q")
    STAGES.register(real_eval)


def test_report_sections_and_plots(run_dir):
    text = build_report(run_dir).read_text()
    assert "| toy-q | yes | 10 | 6 | not_ascii: 2, prompt_too_long: 2 |" in text
    assert "### toy-q: 2 failed rows" in text
    assert "| q9 | prompt_too_long | prompt 9 + max_tokens 9 \\| 16 |" in text
    assert (run_dir / "report_files" / "rows.png").stat().st_size > 1000
    assert (run_dir / "report_files" / "toy-q-difficulty.png").stat().st_size > 1000
    assert "| sft:smol | 25.0 | 50.0 | 37.5 |" in text
    cost = [line for line in text.splitlines() if line.startswith("| toy-q | cpu")]
    assert len(cost) == 1 and cost[0].split("|")[6].strip() == "100"
    assert '"question": "q1"' in text


def test_report_needs_output(tmp_path):
    with pytest.raises(SqjaxError, match="no stage output found"):
        build_report(tmp_path)


def test_probe_table_and_other_metrics(run_dir):
    text = build_report(run_dir).read_text()
    assert "| smol | 8 | smol | 12.5 | 0.0 | - |" in text
    assert "| qft:smol | 8 | smol | 75.0 |" in text
    assert '"spearman": 0.42' in text
