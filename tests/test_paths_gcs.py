"""gs:// paths against a GCS emulator (tests/gcs_emulator.py): sqjax.paths itself, a stage whose
run directory, input and report are in the bucket, models streamed from and exported to the
bucket, and unknown URL schemes refused."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from sqjax import paths
from sqjax.cli import cli
from sqjax.errors import SqjaxError
from sqjax.pipeline import shards
from sqjax.pipeline.report import build_report
from sqjax.pipeline.runner import run_stage
from sqjax.registry import parse_config


@pytest.mark.parametrize("url", ["s3://bucket/run", "hdfs://nn/run", "gs:/bucket/run", "gs://"])
def test_an_unknown_scheme_is_an_error(url):
    with pytest.raises(SqjaxError, match="unsupported location; use a local path or gs://"):
        paths.as_path(url)


def test_the_cli_refuses_an_unknown_scheme_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "1+1?"}\n')
    config = tmp_path / "c.yaml"
    config.write_text(f"seed_questions: {{sources: [{{path: '{questions}', field: question}}]}}\n")
    args = ["stage", "seed-questions", "--config", str(config), "--out", "s3://bucket/run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "'s3://bucket/run': unsupported location" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "q.jsonl"]


def test_local_paths_stay_pathlib(tmp_path):
    assert paths.as_path(str(tmp_path)) == tmp_path and not paths.is_remote(tmp_path)
    assert paths.as_path(f"file://{tmp_path}") == tmp_path


def test_write_list_copy_move_in_the_bucket(bucket_url, tmp_path):
    root = paths.as_path(bucket_url)
    assert paths.is_remote(root) and paths.list_names(root) == []
    paths.write_text(root / "a" / "x.json", '{"v": 1}')
    paths.write_bytes(root / "a" / "sub" / "y.bin", b"\x00\x01")
    paths.write_text(root / "a" / "x.json", '{"v": 2}')  # overwritten whole
    assert paths.list_names(root / "a") == ["sub", "x.json"]
    assert json.loads((root / "a" / "x.json").read_text()) == {"v": 2}
    paths.move_tree(root / "a", root / "b")
    assert paths.list_names(root) == ["b"] and not (root / "a").exists()
    with paths.local_dir(root / "b", skip=(".bin",)) as local:
        assert sorted(p.name for p in local.rglob("*") if p.is_file()) == ["x.json"]
    paths.copy_tree(root / "b", tmp_path / "copy")
    assert (tmp_path / "copy" / "sub" / "y.bin").read_bytes() == b"\x00\x01"
    paths.remove_tree(root / "b")
    assert paths.list_names(root) == []


def test_staged_dir_uploads_config_last_and_drops_stale_weights(bucket_url):
    root = paths.as_path(bucket_url)
    paths.write_bytes(root / "hf" / "model-00001-of-00002.safetensors", b"old")
    with paths.staged_dir(root / "hf", stale=("model",)) as local:
        (local / "model.safetensors").write_bytes(b"new")
        (local / "config.json").write_text("{}")
    assert paths.list_names(root / "hf") == ["config.json", "model.safetensors"]
    # config.json is the commit marker: it is the newest object
    info = {n: (root / "hf" / n).stat().mtime for n in paths.list_names(root / "hf")}
    assert info["config.json"] >= info["model.safetensors"]


def test_a_log_file_in_the_bucket_keeps_earlier_lines(bucket_url):
    path = paths.as_path(bucket_url) / "log.txt"
    for attempt in range(2):
        handler = paths.log_handler(path)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log = logging.getLogger(f"sqjax.test-log-{attempt}")
        log.addHandler(handler)
        log.warning("attempt %d", attempt)
        log.removeHandler(handler)
        handler.close()
    assert path.read_text() == "attempt 0\nattempt 1\n"


SEED_CONFIG = """run_dir: unused
seed: 3
seed_questions:
  sources: [{{path: '{questions}', field: question}}]
"""


def _seed_config(questions: str):
    return parse_config(SEED_CONFIG.format(questions=questions), "seed.yaml")


def test_a_stage_reads_and_writes_the_bucket_like_a_local_disk(bucket_url, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sqjax")
    lines = "".join(json.dumps({"question": f"What is {i} + {i}?"}) + "\n" for i in range(30))
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "q.jsonl").write_text(lines)
    remote_q = f"{bucket_url}/inputs/q.jsonl"
    paths.write_text(remote_q, lines)

    run_stage(_seed_config(str(tmp_path / "inputs" / "q.jsonl")), "seed-questions",
              run_dir=tmp_path / "run")  # fmt: skip
    remote = run_stage(_seed_config(remote_q), "seed-questions", run_dir=f"{bucket_url}/run")
    stage = paths.as_path(bucket_url) / "run" / "seed-questions"
    assert remote["finished"] and remote["rows_out"] == 30
    assert shards.output_hash(stage) == shards.output_hash(tmp_path / "run" / "seed-questions")
    assert list(shards.iter_rows(stage)) == list(
        shards.iter_rows(tmp_path / "run" / "seed-questions")
    )
    names = paths.list_names(stage)
    assert {"manifest.json", "log.txt", "part-00000-00000.jsonl"} <= set(names)
    assert "attempt 1" in (stage / "log.txt").read_text()

    again = run_stage(_seed_config(remote_q), "seed-questions", run_dir=f"{bucket_url}/run")
    assert again == remote  # finished: skipped, the manifest read back from the bucket
    report = build_report(f"{bucket_url}/run")
    assert str(report) == f"{bucket_url}/run/report.md" and "seed-questions" in report.read_text()
    assert "rows.png" in paths.list_names(paths.as_path(bucket_url) / "run" / "report_files")


def test_a_model_streams_from_and_exports_to_the_bucket(bucket_url, tmp_path):
    import jax
    from test_stage_a_fixtures import save_tiny

    from sqjax.checkpoints.api import export_hf, load_model, load_tokenizer

    save_tiny(tmp_path / "tiny")
    remote = f"{bucket_url}/models/tiny"
    paths.copy_tree(tmp_path / "tiny", remote)

    a = load_model(tmp_path / "tiny", dtype="float32")
    b = load_model(remote, dtype="float32")
    flat_a, flat_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(flat_a) == len(flat_b) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(flat_a, flat_b)
    )
    assert load_tokenizer(remote).encode("1 + 1") == load_tokenizer(tmp_path / "tiny").encode(
        "1 + 1"
    )

    export_hf(b, f"{bucket_url}/export", tokenizer=load_tokenizer(remote))
    names = paths.list_names(paths.as_path(bucket_url) / "export")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(names)
    c = load_model(f"{bucket_url}/export", dtype="float32")
    assert all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(flat_a, jax.tree.leaves(c)))  # fmt: skip


def test_weights_are_read_in_ranges_not_downloaded(bucket_url, tmp_path):
    """A tensor read from a bucket fetches about that tensor's bytes, not the whole file."""
    from safetensors.numpy import save_file

    from sqjax.checkpoints.safetensors_io import _open

    big = np.arange(4 << 20, dtype=np.float32)  # 16 MiB
    small = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_file({"big": big, "small": small}, str(tmp_path / "model.safetensors"))
    remote = paths.as_path(bucket_url) / "model.safetensors"
    paths.upload_file(tmp_path / "model.safetensors", remote)
    with _open(remote) as reader:
        assert sorted(reader.keys()) == ["big", "small"]
        assert np.array_equal(reader.get_tensor("small"), small)
        assert reader.f.cache.total_requested_bytes < 8 << 20  # header + small + readahead
        assert np.array_equal(reader.get_tensor("big"), big)


def test_subprocesses_see_the_emulator(bucket_url):
    """The environment the fixture sets reaches a child process (the multi-process tests
    rely on it)."""
    code = "import sys; from sqjax import paths; paths.write_text(sys.argv[1], 'from a child')"
    subprocess.run([sys.executable, "-c", code, f"{bucket_url}/child.txt"], check=True,
                   env=dict(os.environ))  # fmt: skip
    assert paths.as_path(f"{bucket_url}/child.txt").read_text() == "from a child"
