"""A real GCS JSON API for tests: `gcp-storage-emulator` on a free port of 127.0.0.1 (with the
object generations tensorstore needs, tests/gcs_emulator_server.py).

`gcs_emulator` (one per test session) starts it and points every client at it through the
environment, which subprocesses inherit: STORAGE_EMULATOR_HOST (gcsfs, google-cloud-storage)
and TENSORSTORE_GCS_HTTP_URL (Orbax's array writer). `bucket_url` is a fresh gs:// prefix in
the emulator's bucket for one test.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "sqjax-test"
SERVER = Path(__file__).with_name("gcs_emulator_server.py")  # the emulator + GCS generations
ENV = {
    # the hierarchical-namespace probe of gcsfs is a gRPC call the emulator does not serve
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    "NO_GCE_CHECK": "true",  # no metadata-server credentials lookup (there is none)
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_ROOT": "127.0.0.1:9",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_listening(port: int, proc: subprocess.Popen, log, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"gcp-storage-emulator exited: {log.read()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"gcp-storage-emulator did not listen on port {port} in {timeout_s} s")


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """The emulator's endpoint URL, with the environment pointing every client at it."""
    # its request log goes to a file: an unread pipe fills up and stalls the single-threaded
    # server
    with tempfile.TemporaryFile("w+") as log:
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(port), BUCKET],
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            _wait_until_listening(port, proc, log)
            with _environment(f"http://127.0.0.1:{port}") as url:
                yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def _environment(url: str) -> Iterator[str]:
    env = {**ENV, "STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket_url(gcs_emulator: str) -> str:
    """A gs:// prefix no other test uses."""
    return f"gs://{BUCKET}/{uuid.uuid4().hex[:12]}"
