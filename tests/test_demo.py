"""The real demo: `sqjax demo` on SmolLM2-135M-Instruct and GSM8K/MATH, every stage.

Opt-in (it takes up to ~20 minutes on 2 CPU cores, and .ci/run runs `sqjax demo` itself):
SQJAX_RUN_DEMO=1 pytest tests/test_demo.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from sqjax.pipeline.manifest import read_manifest
from sqjax.stages import STAGES
from sqjax.stages.reward import dataset_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("SQJAX_RUN_DEMO") != "1", reason="set SQJAX_RUN_DEMO=1"),
]


@pytest.mark.timeout(3600)
def test_demo_runs_every_stage(tmp_path):
    run = tmp_path / "demo"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sqjax.cli", "demo", "--out", str(run)],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")},
    )
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = run / "report.md"
    assert f"report: {report}" in proc.stdout
    assert f"dataset: {dataset_path(run)}" in proc.stdout
    manifests = {name: read_manifest(run / name) for name in STAGES.names()}
    unfinished = [n for n, m in manifests.items() if not (m and m.get("finished"))]
    assert not unfinished, f"stages not finished: {unfinished}"
    text = report.read_text(encoding="utf-8")
    for name in STAGES.names():
        assert f"| {name} | yes |" in text

    rows = [json.loads(line) for line in dataset_path(run).read_text().splitlines()]
    assert rows and all(r["query"] and r["response"] for r in rows)

    scores = manifests["eval"]["metrics"]["scores"]
    assert set(scores) == {"smol", "sft:smol"}
    for per in scores.values():
        assert set(per) == {"gsm8k", "math"}
    assert "## Evaluation" in text and "| sft:smol |" in text and "| smol |" in text
    times = {n: round(m["wall_s"]) for n, m in manifests.items()}
    print(f"demo wall time {wall:.0f} s; per stage (s): {times}")
