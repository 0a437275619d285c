"""The train entry point end to end: overfitting, kill -9 and resume, non-finite stop, DPO."""

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
from test_training_support import QUESTIONS, char_tokenizer, tiny_config, write_jsonl

import sqjax
from sqjax.errors import SqjaxError
from sqjax.models.decoder import create_model
from sqjax.training.api import train
from sqjax.training.config import OptimConfig, TrainConfig

HERE = Path(__file__).parent


def qft_config(tmp: Path, **changes) -> TrainConfig:
    tok = char_tokenizer()
    tmp.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(tmp / "q.jsonl", [{"question": q} for q in QUESTIONS * 3])
    model = create_model(tiny_config(len(tok)), seed=0)
    cfg = TrainConfig(
        model=model, tokenizer=tok, data=(data,), output_dir=str(tmp / "run"), loss="sft",
        seq_len=128, batch_size=2, accum_steps=2, epochs=2, mesh=(1, 1, 1), save_every=3,
        optim=OptimConfig(lr=1e-2, warmup_steps=2), export=False, progress_bar=False,
    )
    return cfg.replace(**changes)


def losses(metrics_path) -> list[float]:
    return [json.loads(line)["loss"] for line in Path(metrics_path).read_text().splitlines()]


@pytest.mark.slow
def test_overfitting_a_few_examples_drives_loss_near_zero(tmp_path):
    cfg = qft_config(tmp_path, epochs=200, batch_size=2, accum_steps=1, save_every=1000,
                     optim=OptimConfig(lr=2e-2, warmup_steps=5, clip_norm=1.0))
    cfg = cfg.replace(data=(write_jsonl(tmp_path / "two.jsonl", [{"question": q} for q in QUESTIONS[:2]]),))
    result = train(cfg)
    seq = losses(result.metrics_path)
    print(f"overfit: {len(seq)} steps, loss {seq[0]:.3f} -> {seq[-1]:.4f}")
    assert seq[0] > 3.0 and seq[-1] < 0.05


def test_non_finite_loss_stops_with_the_step_number(tmp_path):
    cfg = qft_config(tmp_path, optim=OptimConfig(lr=1e30, warmup_steps=0, clip_norm=None), save_every=1)
    with pytest.raises(SqjaxError, match=r"non-finite loss .* at step (\d+); the last good checkpoint is step") as err:
        train(cfg)
    failed = int(err.value.args[0].split("at step ")[1].split(";")[0])
    kept = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
    print(f"{err.value}; kept checkpoints {kept}")
    assert kept and max(kept) == failed - 1


@pytest.mark.slow
def test_dpo_through_the_entry_point_raises_the_margin(tmp_path):
    rows = [{"chosen": q + " Give the number.", "rejected": q} for q in QUESTIONS]
    cfg = qft_config(tmp_path, loss="dpo", data=(write_jsonl(tmp_path / "pairs.jsonl", rows),),
                     batch_size=4, accum_steps=2, epochs=4, seq_len=96,
                     optim=OptimConfig(lr=5e-3, warmup_steps=1), save_every=100, export=True)
    result = train(cfg)
    records = [json.loads(line) for line in Path(result.metrics_path).read_text().splitlines()]
    margins = [r["margin"] for r in records]
    print(f"dpo via train(): {len(records)} steps, margin {margins[0]:.4f} -> {margins[-1]:.4f}")
    assert abs(margins[0]) < 1e-5 and abs(records[0]["loss"] - np.log(2)) < 1e-5  # policy == reference
    assert margins[-1] > 0.3 and records[-1]["accuracy"] == 1.0
    assert (tmp_path / "run" / "reference_logps.npy").exists()
    exported = sqjax.load_model(result.hf_dir, dtype="float32")  # the final weights, as HF files
    assert exported.config.vocab_size == cfg.model.config.vocab_size
    assert not np.allclose(np.asarray(exported.embed[...]), np.asarray(cfg.model.embed[...]))


def run_subprocess(tmp: Path, slow: bool) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(HERE)}
    args = [sys.executable, __file__, str(tmp), "slow" if slow else "fast"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_losses(tmp_path):
    reference = losses(train(qft_config(tmp_path / "ref")).metrics_path)
    assert len(reference) >= 10
    proc = run_subprocess(tmp_path / "killed", slow=True)
    metrics = tmp_path / "killed" / "run" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 7):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "timeout"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    seen = len(metrics.read_text().splitlines())
    resumed = run_subprocess(tmp_path / "killed", slow=False)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    record = json.loads(output.strip().splitlines()[-1])
    again = losses(metrics)
    diff = float(np.max(np.abs(np.asarray(again) - np.asarray(reference))))
    print(f"killed after {seen} logged steps, resumed from step {record['resumed_from']}; "
          f"{len(again)} losses, max |diff| vs uninterrupted {diff:.2e}")
    assert record["resumed_from"] is not None and 0 < record["resumed_from"] < len(reference)
    assert len(again) == len(reference) and diff <= 1e-5


def main(tmp: str, mode: str) -> None:
    """Entry point of the subprocess the kill -9 test runs (and kills)."""
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    if mode == "slow":  # steps take ms; slow the loop so the kill lands mid-run
        from sqjax.training import monitor

        log = monitor.Monitor.log
        monitor.Monitor.log = lambda self, *a, **k: (time.sleep(0.4), log(self, *a, **k))[1]
    result = train(qft_config(Path(tmp)))
    print(json.dumps({"resumed_from": result.resumed_from, "steps": result.steps}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
