"""launch/ scripts print exactly what they would run under --dry-run."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry(script: str, *args: str) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        ["bash", str(ROOT / "launch" / script), "--dry-run", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


@pytest.mark.parametrize(
    "kind,accelerator,version",
    [
        ("v4-8", "v4-8", "tpu-ubuntu2204-base"),
        ("v5e-8", "v5litepod-8", "v2-alpha-tpuv5-lite"),
        ("v5p-8", "v5p-8", "v2-alpha-tpuv5"),
    ],
)
def test_tpu_create(kind, accelerator, version):
    rc, out, _ = dry("tpu.sh", "create", "--name", "sq", "--zone", "us-central2-b", "--type", kind)
    assert rc == 0
    assert out == [
        f"gcloud compute tpus tpu-vm create sq --zone=us-central2-b --accelerator-type={accelerator} --version={version}"
    ]


def test_tpu_install_and_stage_run_on_every_worker():
    rc, out, _ = dry("tpu.sh", "install", "--name", "sq", "--zone", "z", "--project", "p")
    assert rc == 0 and out[0].startswith("git archive")
    assert all("--worker=all" in line for line in out[1:])
    assert '.venv/bin/pip install -q -e ".[tpu]"' in out[2]
    rc, out, _ = dry(
        "tpu.sh", "stage", "--name", "sq", "--zone", "z", "--config", "configs/paper/scalequest.yaml",
        "--stage", "gen-questions", "--run-dir", "gs://bucket/run",
    )
    assert rc == 0
    assert out == [
        (
            "gcloud compute tpus tpu-vm ssh sq --zone=z --worker=all --command='cd sqjax && .venv/bin/sqjax stage "
            "gen-questions --config configs/paper/scalequest.yaml --out gs://bucket/run 2>&1 | tee -a "
            "$HOME/sqjax-$(hostname).log'"
        )
    ]


def test_tpu_resume_loop_recreates_and_resumes_from_the_bucket():
    rc, out, _ = dry(
        "tpu.sh", "resume-loop", "--name", "sq", "--zone", "z", "--config", "c.yaml", "--type", "v5e-16",
        "--spot", "--run-dir", "gs://bucket/run",
    )
    assert rc == 0
    commands = [line for line in out if not line.startswith("#")]
    assert commands[0].startswith("gcloud compute tpus tpu-vm delete sq")
    assert commands[1].endswith("--accelerator-type=v5litepod-16 --version=v2-alpha-tpuv5-lite --spot")
    assert "--worker=all" in commands[-1]
    assert "sqjax run --config c.yaml --out gs://bucket/run 2>&1" in commands[-1]
    assert "# then rerun; it resumes from gs://bucket/run (finished shards are skipped):" in out


def test_tpu_run_dir_is_a_bucket_unless_single_host():
    base = ("run", "--name", "sq", "--zone", "z", "--config", "c.yaml")
    rc, out, _ = dry("tpu.sh", *base, "--run-dir", "gs://bucket/run")
    assert rc == 0 and out[0].endswith("sqjax run --config c.yaml --out gs://bucket/run 2>&1 | tee -a $HOME/sqjax-$(hostname).log'")
    rc, _, err = dry("tpu.sh", *base)
    assert rc == 2 and "--run-dir is required for 'run'" in err
    rc, _, err = dry("tpu.sh", *base, "--run-dir", "runs/x")
    assert rc == 2 and "use gs://BUCKET/PATH, or add --single-host" in err
    rc, out, _ = dry("tpu.sh", *base, "--run-dir", "runs/x", "--single-host")
    assert rc == 0 and "--out runs/x 2>&1" in out[0]
    rc, _, err = dry("tpu.sh", *base, "--run-dir", "s3://bucket/run")
    assert rc == 2 and "unsupported scheme; use gs://BUCKET/PATH" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (("create", "--name", "sq"), "--zone is required for 'create'"),
        (("create", "--name", "sq", "--zone", "z", "--type", "v9-8"), "unknown TPU type 'v9-8'"),
        (("frobnicate",), "unknown command 'frobnicate'"),
    ],
)
def test_tpu_errors(args, message):
    rc, _, err = dry("tpu.sh", *args)
    assert rc == 2 and message in err


def test_gpu_scripts():
    rc, out, _ = dry("gpu.sh", "install")
    assert rc == 0 and out[1] == ".venv/bin/pip install -q -e '.[cuda]'"
    rc, out, _ = dry("gpu.sh", "resume-loop", "--config", "c.yaml", "--stage", "gen-questions", "--run-dir", "gs://b/run")
    assert out == ["until .venv/bin/sqjax stage gen-questions --config c.yaml --out gs://b/run; do sleep 30; done"]
    rc, out, _ = dry("gpu.sh", "run", "--config", "c.yaml", "--run-dir", "runs/x")
    assert rc == 0 and out == [".venv/bin/sqjax run --config c.yaml --out runs/x"]
    rc, _, err = dry("gpu.sh", "stage", "--config", "c.yaml")
    assert rc == 2 and "--stage is required" in err
    rc, _, err = dry("gpu.sh", "run", "--config", "c.yaml", "--run-dir", "s3://b/run")
    assert rc == 2 and "unsupported scheme" in err
