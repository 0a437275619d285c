"""Runs in a bucket (the GCS emulator) SIGKILLed and rerun, as after a preemption.

A stage killed again and again while it writes: the output is byte for byte that of an
uninterrupted run, with no stray objects. Object storage has no rename; the commit scheme
(sqjax.paths) is one whole-object upload per file and the shard object written after its
stats object. Each attempt is killed right after the bucket shows a new shard, i.e. while the
next one is being written.

A training run killed after an Orbax checkpoint reached the bucket resumes from it and logs
the uninterrupted run's losses.

Run as a script (`python tests/test_gcs_resume.py OUTPUT_DIR TMP slow|fast`) it trains once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sqjax import paths

pytestmark = pytest.mark.slow

N_ROWS = 100_000  # 20 shards of seed-questions' 5,000 rows
CONFIG = """run_dir: unused
seed: 11
seed_questions:
  sources: [{{path: '{questions}', field: question}}]
"""


def _launch(config, run_dir: str) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    cmd = [sys.executable, "-m", "sqjax.cli", "stage", "seed-questions", "--config", str(config),
           "--out", run_dir]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _shards(stage) -> list[str]:
    return [n for n in paths.list_names(stage) if n.startswith("part-") and n.endswith(".jsonl")]


def _kill_after_next_shard(proc: subprocess.Popen, stage) -> bool:
    """SIGKILLs `proc` as soon as the bucket holds one more shard than before; False when the
    process finished first."""
    before = len(_shards(stage))
    while proc.poll() is None:
        if len(_shards(stage)) > before:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    return False


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]


def test_sigkill_while_writing_to_the_bucket_then_rerun_is_identical(bucket_url, tmp_path):
    rows = (
        json.dumps({"question": f"Question {i}: what is {i} * 7? " + "x" * 160})
        for i in range(N_ROWS)
    )
    questions = f"{bucket_url}/inputs/questions.jsonl"
    paths.write_text(questions, "".join(r + "\n" for r in rows))
    config = tmp_path / "seed.yaml"
    config.write_text(CONFIG.format(questions=questions))
    root = paths.as_path(bucket_url)

    _finish(_launch(config, f"{bucket_url}/reference"))
    reference = root / "reference" / "seed-questions"
    expected = _shards(reference)
    assert len(expected) == 20

    stage = root / "killed" / "seed-questions"
    kills = 0
    for _ in range(40):
        if kills >= 12:
            break
        proc = _launch(config, f"{bucket_url}/killed")
        if not _kill_after_next_shard(proc, stage):
            break
        kills += 1
        manifest = json.loads((stage / "manifest.json").read_text())
        assert not manifest["finished"]
    print(
        f"{kills} kills while the stage wrote; {len(_shards(stage))} of 20 shards before the rerun"
    )
    assert kills >= 10, f"only {kills} kills landed while the stage was writing"
    assert 0 < len(_shards(stage)) < len(expected)
    _finish(_launch(config, f"{bucket_url}/killed"))

    assert paths.list_names(stage) == paths.list_names(reference)  # no stray objects
    for name in expected:
        assert (stage / name).read_bytes() == (reference / name).read_bytes(), name
        stats = name.removesuffix(".jsonl") + ".stats.json"
        assert (
            json.loads((stage / stats).read_text())["input_hash"]
            == json.loads((reference / stats).read_text())["input_hash"]
        )
    killed = json.loads((stage / "manifest.json").read_text())
    ref = json.loads((reference / "manifest.json").read_text())
    assert killed["finished"] and killed["rows_out"] == ref["rows_out"] == N_ROWS
    assert killed["output_hash"] == ref["output_hash"]
    assert killed["attempts"] == kills + 1


def _train_subprocess(output_dir: str, tmp, slow: bool) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(Path(__file__).parent)}
    args = [sys.executable, __file__, output_dir, str(tmp), "slow" if slow else "fast"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def _losses(metrics) -> list[float]:
    return [json.loads(line)["loss"] for line in metrics.read_text().splitlines() if line]


def test_training_killed_after_a_checkpoint_resumes_from_the_bucket(bucket_url, tmp_path):
    from test_training_loop import qft_config

    from sqjax.training.api import train

    reference = _losses(paths.as_path(train(qft_config(tmp_path / "ref")).metrics_path))
    assert len(reference) >= 10
    out = paths.as_path(f"{bucket_url}/train")
    proc = _train_subprocess(str(out), tmp_path / "killed", slow=True)
    deadline = time.time() + 400
    while "6" not in paths.list_names(out / "checkpoints"):  # save_every=3: the second one
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _train_subprocess(str(out), tmp_path / "killed", slow=False)
    output, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, output[-3000:]
    record = json.loads(output.strip().splitlines()[-1])
    assert 0 < record["resumed_from"] < len(reference) and record["steps"] == len(reference)
    again = _losses(out / "metrics.jsonl")
    assert len(again) == len(reference)
    diff = float(np.max(np.abs(np.asarray(again) - np.asarray(reference))))
    print(f"resumed from step {record['resumed_from']}; max |loss diff| {diff:.2e}")
    assert diff <= 1e-5


def main(output_dir: str, tmp: str, mode: str) -> None:
    """Entry point of the training subprocess (killed in slow mode: 0.4 s per step)."""
    import jax
    from test_training_loop import qft_config

    from sqjax.training import monitor
    from sqjax.training.api import train

    jax.config.update("jax_default_matmul_precision", "highest")
    if mode == "slow":
        log = monitor.Monitor.log
        monitor.Monitor.log = lambda self, *a, **k: (time.sleep(0.4), log(self, *a, **k))[1]
    result = train(qft_config(Path(tmp), output_dir=output_dir))
    print(json.dumps({"resumed_from": result.resumed_from, "steps": result.steps}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
