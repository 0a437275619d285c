"""Two processes on localhost (JAX's own runtime, gloo collectives) run `sqjax run` over a
data stage, a training stage (qft, data-parallel over both processes) and a generation
stage that samples from the trained checkpoint, and produce what one process produces: the
same losses, the same exported weights and the same rows. A process that fails stops the
other with its error instead of leaving it waiting."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file
from test_stage_a_fixtures import read_rows, save_tiny

pytestmark = pytest.mark.slow

CONFIG = """run_dir: unused
seed: 5
models:
  tiny: {{path: '{model}', dtype: float32}}
skip_stages: [qpo-sample, qpo-rewrite, qpo-pairs, qpo]
seed_questions:
  sources: [{{path: '{questions}', field: question}}]
qft: {{models: [tiny], seq_len: 32, batch_size: 4, max_steps: 3, lr: 1.0e-2, probe_questions: 0}}
gen_questions: {{generators: ['qft:tiny'], num_questions: 12, max_tokens: 8, shard_size: 2, batch_size: 4}}
"""
QUESTIONS = [f"What is {a} plus {a + 3}? Show the sum." for a in range(16)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(config, out, *extra, args=("run", "--to", "gen-questions")):
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "sqjax.cli", *args, "--config", str(config), "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _two(config, out, args=("run", "--to", "gen-questions")):
    port = _free_port()
    return [
        _launch(config, out, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                "--process-id", str(i), args=args)
        for i in range(2)
    ]


def _finish(proc, code: int = 0) -> str:
    try:
        out, _ = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"process hung:\n{out[-3000:]}") from None
    assert proc.returncode == code, out[-3000:]
    return out


def _losses(run) -> list[float]:
    lines = (run / "qft" / "train" / "tiny" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if line.strip()]


@pytest.fixture
def config(tmp_path):
    save_tiny(tmp_path / "tiny")
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS))
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG.format(model=tmp_path / "tiny", questions=questions))
    return path


def test_two_processes_train_and_generate_like_one(config, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _finish(_launch(config, one))
    for p in _two(config, two):
        _finish(p)

    assert len(_losses(one)) == 3 and np.allclose(_losses(one), _losses(two), rtol=0, atol=1e-5)
    w1 = load_file(one / "qft" / "artifacts" / "tiny" / "model.safetensors")
    w2 = load_file(two / "qft" / "artifacts" / "tiny" / "model.safetensors")
    assert w1.keys() == w2.keys()
    assert max(float(np.abs(w1[k] - w2[k]).max()) for k in w1) < 1e-5
    rows1, rows2 = read_rows(one / "gen-questions"), read_rows(two / "gen-questions")
    assert len(rows1) == 12 and rows1 == rows2
    parts = sorted(p.name for p in (two / "gen-questions").glob("part-*.jsonl"))
    assert any(n.startswith("part-00000-") for n in parts) and any(n.startswith("part-00001-") for n in parts)
    manifest = json.loads((two / "qft" / "manifest.json").read_text())
    assert manifest["finished"] and manifest["process_count"] == 2


def test_a_failing_process_stops_the_other(config, tmp_path):
    """Process 0 refuses a stage directory with stray files; process 1, which waits for
    process 0 to prepare it, stops with that error instead of waiting on."""
    run = tmp_path / "bad"
    (run / "seed-questions").mkdir(parents=True)
    (run / "seed-questions" / "stray.txt").write_text("x")
    p0, p1 = _two(config, run, args=("stage", "seed-questions"))
    assert "holds files but no manifest.json" in _finish(p0, code=1)
    assert "process 0 failed in this stage" in _finish(p1, code=1)
