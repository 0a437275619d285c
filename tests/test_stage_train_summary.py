"""Training stages' metrics survive any kill, and manifests are strict JSON (issue 17 item 4).

The trainer is replaced by a fake that behaves as `sqjax.training.api.train` does on a resume:
when the last checkpoint was already committed, its loop body never runs and it reports a NaN
loss; the metrics it persisted beside the checkpoint (metrics.jsonl) hold the real last loss.
"""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import pytest

from sqjax.data.jsonl import atomic_write_json, atomic_write_jsonl
from sqjax.pipeline import manifest as mf
from sqjax.pipeline.context import StageContext
from sqjax.registry import parse_config
from sqjax.stages import sft


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_files_are_strict_and_nan_is_null(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    atomic_write_json(path, {"loss": math.nan, "deep": [{"x": math.inf}, -math.inf, 1.5]})
    assert _strict(path.read_text()) == {"deep": [{"x": None}, None, 1.5], "loss": None}
    atomic_write_jsonl(tmp_path / "r.jsonl", [{"score": math.nan, "ok": 2.0}])
    assert _strict((tmp_path / "r.jsonl").read_text()) == {"score": None, "ok": 2.0}
    mf.write_manifest(tmp_path, {"metrics": {"spearman": math.nan}})
    assert _strict((tmp_path / mf.MANIFEST).read_text()) == {"metrics": {"spearman": None}}


def _fake_trainer(tmp_path: Path, final_loss: float, calls: list):
    """A stand-in for train(cfg): writes metrics.jsonl (steps 1-3) and an HF export."""

    def train(cfg):
        calls.append(cfg)
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        rows = [{"step": s, "loss": 2.0 - s / 4, "lr": 1e-5} for s in (1, 2, 3)]
        atomic_write_jsonl(out / "metrics.jsonl", rows)
        export = out / "hf"
        export.mkdir(exist_ok=True)
        (export / "config.json").write_text("{}")
        return types.SimpleNamespace(
            steps=3,
            final_loss=final_loss,
            metrics_path=str(out / "metrics.jsonl"),
            hf_dir=str(export),
        )

    return train


@pytest.fixture
def sft_ctx(tmp_path: Path, monkeypatch):
    from sqjax.pipeline import training
    from sqjax.training import api

    tokenizer = types.SimpleNamespace(chat_template=None)
    monkeypatch.setattr(training, "load_for_training", lambda ctx, ref: ("model", tokenizer, None))
    cfg = parse_config(
        "models: {m: {path: /m}}\nsft: {models: [{model: m, lr: 2.0e-5}]}\n", "t.yaml"
    )

    def make(final_loss: float, calls: list) -> StageContext:
        monkeypatch.setattr(api, "train", _fake_trainer(tmp_path, final_loss, calls))
        manifest: dict = {}
        ctx = StageContext("sft", cfg, cfg.sft, tmp_path / "run", manifest, ("reward",))
        ctx.save_manifest = lambda **_: mf.write_manifest(ctx.stage_dir, manifest)
        return ctx

    return make


ROWS = [{"query": "q", "response": "r"}]


def test_resume_after_the_last_checkpoint_reports_the_last_loss(sft_ctx) -> None:
    """Killed after the last checkpoint, before publishing: the rerun's trainer loop does not
    run (final_loss NaN); the manifest still gets the last logged loss, as strict JSON."""
    ctx = sft_ctx(math.nan, [])
    sft.train_one(ctx, ctx.section.models[0], ROWS)
    summary = ctx.manifest["metrics"]["train/m"]
    assert summary["final_loss"] == pytest.approx(2.0 - 3 / 4)
    assert summary["steps"] == 3 and summary["rows"] == 1
    on_disk = _strict((ctx.stage_dir / mf.MANIFEST).read_text())
    assert on_disk["metrics"]["train/m"]["final_loss"] == pytest.approx(1.25)


def test_metrics_survive_a_kill_after_publishing(sft_ctx) -> None:
    """Killed after the checkpoint was published but before the manifest was saved: the rerun
    does not train again and still reports the training metrics."""
    calls: list = []
    first = sft_ctx(1.25, calls)
    sft.train_one(first, first.section.models[0], ROWS)
    expected = first.manifest["metrics"]["train/m"]
    rerun = sft_ctx(1.25, calls)  # a fresh attempt: its manifest has no metrics yet
    sft.train_one(rerun, rerun.section.models[0], ROWS)
    assert len(calls) == 1
    assert rerun.manifest["metrics"]["train/m"] == expected
