"""Two processes that share nothing but a bucket (the GCS emulator), as the hosts of a TPU
slice do: each has its own working directory, temp dir, home and caches, and the config
names the model, the seed questions and the run directory as gs:// URLs. `sqjax run` over a
data stage, a training stage (qft, data-parallel across both processes: the global batch is
built with make_array_from_process_local_data) and a sampling stage (gen-questions, from the
trained checkpoint in the bucket) gives what one process gives: the same losses, weights and
rows."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors
from test_multiprocess import CONFIG, QUESTIONS, _finish, _free_port
from test_stage_a_fixtures import save_tiny

from sqjax import paths
from sqjax.pipeline import shards

pytestmark = pytest.mark.slow


def _host(root, name: str, config_text: str) -> dict:
    """A private working directory, temp dir, home and cache for one process."""
    base = root / name
    for sub in ("cwd", "tmp", "home", "cache"):
        (base / sub).mkdir(parents=True)
    (base / "cwd" / "run.yaml").write_text(config_text)
    env = {
        **os.environ,
        "XLA_FLAGS": "",
        "JAX_PLATFORMS": "cpu",
        "TMPDIR": str(base / "tmp"),
        "HOME": str(base / "home"),
        "HF_HOME": str(base / "home" / "hf"),
        "SQJAX_CACHE": str(base / "cache"),
    }
    return {"cwd": base / "cwd", "env": env}


def _launch(host: dict, out: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sqjax.cli", "run", "--to", "gen-questions", "--config",
           "run.yaml", "--out", out, *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=host["cwd"], env=host["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _peer(port: int, i: int) -> tuple[str, ...]:
    return ("--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i))


def _losses(run) -> list[float]:
    lines = (run / "qft" / "train" / "tiny" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if line.strip()]


def _weights(run) -> dict[str, np.ndarray]:
    return load_safetensors((run / "qft" / "artifacts" / "tiny" / "model.safetensors").read_bytes())


def test_two_hosts_sharing_only_a_bucket_train_and_sample_like_one(bucket_url, tmp_path):
    save_tiny(tmp_path / "tiny")
    paths.copy_tree(tmp_path / "tiny", f"{bucket_url}/models/tiny")
    questions = f"{bucket_url}/inputs/questions.jsonl"
    paths.write_text(questions, "".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS))
    config = CONFIG.format(model=f"{bucket_url}/models/tiny", questions=questions)
    hosts = [_host(tmp_path, f"host{i}", config) for i in range(3)]

    _finish(_launch(hosts[2], f"{bucket_url}/one"))
    port = _free_port()
    two = [_launch(hosts[i], f"{bucket_url}/two", *_peer(port, i)) for i in range(2)]
    for proc in two:
        _finish(proc)

    one_run, two_run = paths.as_path(f"{bucket_url}/one"), paths.as_path(f"{bucket_url}/two")
    assert len(_losses(one_run)) == 3
    assert np.allclose(_losses(one_run), _losses(two_run), rtol=0, atol=1e-5)
    w1, w2 = _weights(one_run), _weights(two_run)
    assert w1.keys() == w2.keys()
    assert max(float(np.abs(w1[k] - w2[k]).max()) for k in w1) < 1e-5
    rows1 = list(shards.iter_rows(one_run / "gen-questions"))
    rows2 = list(shards.iter_rows(two_run / "gen-questions"))
    assert len(rows1) == 12 and rows1 == rows2
    parts = [n for n in paths.list_names(two_run / "gen-questions") if n.startswith("part-")]
    assert any(n.startswith("part-00000-") for n in parts)
    assert any(n.startswith("part-00001-") for n in parts)
    manifest = json.loads((two_run / "qft" / "manifest.json").read_text())
    assert manifest["finished"] and manifest["process_count"] == 2
    ckpts = paths.list_names(two_run / "qft" / "train" / "tiny" / "checkpoints")
    assert "3" in ckpts  # the Orbax checkpoint of the last step, in the bucket
    for host in hosts:  # nothing of the run landed on a host's own disk
        assert sorted(p.name for p in host["cwd"].iterdir()) == ["run.yaml"]
        assert list((host["cwd"].parent / "tmp").iterdir()) == []
    assert (two_run / "report.md").exists() and "gen-questions" in io.StringIO(
        (two_run / "report.md").read_text()
    ).read()
