"""A small pool of worker processes that run math-verify with a hard per-call timeout.

math-verify's timeout uses SIGALRM, which works only in the main thread. Here each check runs
in a child process (`_worker.py`, started with subprocess, so no `__main__` re-import as with
multiprocessing's spawn); a child that overruns the limit is killed and replaced in the
background.
Safe to call from many threads at once: each thread borrows one worker. Workers are killed at
interpreter exit, and a forked child process builds its own pool instead of sharing one.
Workers start with a scrubbed environment (`worker_env`): they read untrusted model output, so
no API key or token of the parent's environment is there to leak.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqjax.errors import SqjaxError

_WORKER_SCRIPT = str(Path(__file__).with_name("_worker.py"))
STARTUP_TIMEOUT_S = 120.0
# The only variables a worker inherits: where Python and its packages are, locale, temp dir.
WORKER_ENV_KEYS = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
)


def worker_env() -> dict[str, str]:
    """The parent's environment reduced to WORKER_ENV_KEYS (no keys, tokens or credentials)."""
    return {k: os.environ[k] for k in WORKER_ENV_KEYS if k in os.environ}


def _pool_size_from_env() -> int:
    """Workers per process: $SQJAX_GRADING_WORKERS, default 2."""
    value = os.environ.get("SQJAX_GRADING_WORKERS", "2")
    if not value.isdigit() or int(value) < 1:
        raise SqjaxError(
            f"SQJAX_GRADING_WORKERS={value!r} is not a positive integer; set it to e.g. 2"
        )
    return int(value)


DEFAULT_POOL_SIZE = _pool_size_from_env()


class _Worker:
    """One child process speaking the JSON-lines protocol of `_worker.py`."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-P", _WORKER_SCRIPT],  # -P: no script dir on sys.path
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            env=worker_env(),
        )
        self._buffer = b""
        hello = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        if hello is None or not hello.get("ready"):
            self.kill()
            why = (hello or {}).get("error", f"no reply within {STARTUP_TIMEOUT_S:.0f} s")
            raise RuntimeError(
                f"symbolic grading worker failed to start ({why}); "
                "check that math-verify is installed in this Python"
            )

    def _read_line(self, deadline: float) -> dict | None:
        """The next JSON line from the child; None on timeout or if the child died."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def ask(self, gold: str, pred: str, timeout_s: float) -> bool | None:
        """True/False from math-verify; None if the child overran timeout_s or died."""
        request = json.dumps({"gold": gold, "pred": pred, "cpu_s": timeout_s}) + "\n"
        try:
            self.proc.stdin.write(request.encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        reply = self._read_line(time.monotonic() + timeout_s)
        return None if reply is None else bool(reply["equal"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class SymbolicPool:
    """At most `size` workers, started lazily; a thread blocks while all are busy."""

    def __init__(self, size: int = DEFAULT_POOL_SIZE) -> None:
        if size < 1:
            raise ValueError(f"pool size={size} must be >= 1")
        self._slots: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(size):
            self._slots.put(None)
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._closed = False

    def check(self, gold: str, pred: str, timeout_s: float) -> bool | None:
        """math-verify's verdict on (gold, pred); None when it overran timeout_s.

        The limit counts the check itself, not the wait for a free worker or its start-up.
        A worker that overran is killed and replaced in the background, so the caller returns
        at once and the next caller usually finds a started worker.
        """
        worker = self._slots.get()
        handed_off = False
        try:
            if worker is None or not worker.alive():
                if worker is not None:
                    self._discard(worker)
                worker = None
                worker = self._start()
            verdict = worker.ask(gold, pred, timeout_s)
            if verdict is None:
                self._discard(worker)
                threading.Thread(target=self._refill, daemon=True).start()
                handed_off = True
            return verdict
        finally:
            if not handed_off:
                self._slots.put(worker)

    def _start(self) -> _Worker:
        worker = _Worker()
        with self._lock:
            if not self._closed:
                self._workers.add(worker)
                return worker
        worker.kill()
        raise RuntimeError("the symbolic grading pool was shut down; use get_pool() for a new one")

    def _refill(self) -> None:
        """Starts a replacement worker, then returns the slot it holds to the pool."""
        worker = None
        try:
            worker = self._start()
        except RuntimeError:  # pool closed or start failed: the next check starts (or raises)
            pass
        finally:
            self._slots.put(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and leak checks)."""
        with self._lock:
            return [w.proc.pid for w in self._workers if w.alive()]

    def close(self) -> None:
        """Kills every worker; the pool must not be used afterwards."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.kill()


_pool: SymbolicPool | None = None
_pool_pid = -1
_pool_lock = threading.Lock()


def get_pool() -> SymbolicPool:
    """The process-wide pool, created on first use (and anew in a forked child)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = SymbolicPool(), os.getpid()
        return _pool


def shutdown_workers() -> None:
    """Kills this process's workers; a later check starts new ones."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and _pool_pid == os.getpid():
        pool.close()


atexit.register(shutdown_workers)
