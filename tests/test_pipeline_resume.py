"""A stage killed with SIGKILL at random moments and rerun gives exactly the rows of an
uninterrupted run: none lost, none duplicated, same drop and token counts.

Run as a script (`python tests/test_pipeline_resume.py RUN_DIR`) it runs the toy stage once;
the test kills such processes at random delays.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

N_ROWS = 240
CONFIG = f"run_dir: unused\nseed: 7\ngen_questions: {{num_questions: {N_ROWS}, shard_size: 12}}\n"


def toy_run(ctx) -> None:
    """Two steps: draw random numbers per row (3 ms each, so kills land mid-run), then
    square them; drops every 7th row; counts 3 tokens per row."""
    items = [{"i": i} for i in range(ctx.section.num_questions)]

    def draw(rows: list[dict], info) -> list[dict]:
        rng = random.Random(info.seed)
        out = []
        for row in rows:
            time.sleep(0.003)
            info.add_tokens(3)
            if row["i"] % 7 == 0:
                info.drop("seventh")
                continue
            out.append({**row, "x": rng.random(), "shard": info.index})
        return out

    drawn = ctx.map_shards(items, draw, ctx.section.shard_size, step="draw").rows()
    ctx.map_shards(drawn, lambda rows, info: [{**r, "x2": r["x"] ** 2} for r in rows], 40)
    ctx.declare_row_stats("x")


def _register() -> None:
    from sqjax.pipeline.stage import Stage
    from sqjax.stages import STAGES

    STAGES.register(Stage("toy", "toy stage", section="gen_questions", run=toy_run))


def run_toy(run_dir: Path) -> dict:
    from sqjax.pipeline.runner import run_stage
    from sqjax.registry import parse_config

    _register()
    try:
        return run_stage(parse_config(CONFIG, "toy.yaml"), "toy", run_dir=run_dir)
    finally:
        from sqjax.stages import STAGES

        STAGES.unregister("toy")


def _rows(run_dir: Path) -> list[dict]:
    from sqjax.pipeline import shards

    return list(shards.iter_rows(run_dir / "toy"))


def _script(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, __file__, str(run_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_matches_uninterrupted(tmp_path):
    reference = run_toy(tmp_path / "reference")
    expected = _rows(tmp_path / "reference")
    assert len(expected) == N_ROWS - len(range(0, N_ROWS, 7))
    assert [r["i"] for r in expected] == [i for i in range(N_ROWS) if i % 7]

    rng = random.Random(0)
    killed_mid_run = 0
    for trial in range(12):
        run_dir = tmp_path / f"trial{trial}"
        proc = _script(run_dir)
        manifest = run_dir / "toy" / "manifest.json"
        deadline = time.monotonic() + 120  # start-up: ~0.4 s idle, far more on a busy machine
        while not manifest.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.2))  # the work takes ~1 s from the manifest on
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL and manifest.exists():
            killed_mid_run += not json.loads(manifest.read_text())["finished"]
        proc = _script(run_dir)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert _rows(run_dir) == expected
        m = json.loads((run_dir / "toy" / "manifest.json").read_text())
        assert m["finished"] and m["rows_out"] == len(expected)
        assert m["drops"] == reference["drops"] == {"seventh": len(range(0, N_ROWS, 7))}
        assert m["tokens"] == reference["tokens"] == 3 * N_ROWS
        assert m["output_hash"] == reference["output_hash"]
    assert killed_mid_run >= 4, "too few kills landed while the stage was running"


if __name__ == "__main__":
    run_toy(Path(sys.argv[1]))
