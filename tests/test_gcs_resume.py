"""A stage writing to a bucket (the GCS emulator), SIGKILLed again and again while it writes,
then rerun: the output is byte for byte that of an uninterrupted run, with no stray objects.

Object storage has no rename; the commit scheme (sqjax.paths) is one whole-object upload per
file and the shard object written after its stats object. Each attempt here is killed right
after the bucket shows a new shard, i.e. while the next one is being written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

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
