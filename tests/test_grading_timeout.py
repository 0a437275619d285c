"""Hard timeout of the symbolic check: from the main thread, from threads, and no leaked workers."""

import os
import subprocess
import sys
import threading
import time

import pytest

from sqjax.grading import is_equivalent, judge, shutdown_workers
from sqjax.grading.symbolic import DEFAULT_POOL_SIZE, get_pool

TIMEOUT_S = 2.0
POWER_TOWER = "9^{9^{9^{9}}}"
GIANT_FACTORIAL = "(10^{9})!"
SYMBOLIC_CASES = [  # (pred, gold, equal): none of these is decided before the subprocess
    ("x^2 + 2x + 1", "(x+1)^2", True),
    ("x^2", "x^3", False),
    ("(1,2)", "[1,2]", False),
    ("1, 2", "2, 1", True),
    ("\\sqrt{12}", "2\\sqrt{3}", True),
    ("(3,-4)", "(-4,3)", False),
]


def _warm_pool() -> None:
    """Starts every worker (concurrently), so timings below exclude process start-up."""
    threads = [
        threading.Thread(target=judge, args=("x^2", "x^3")) for _ in range(DEFAULT_POOL_SIZE)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 60
    while len(get_pool().pids()) < DEFAULT_POOL_SIZE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(get_pool().pids()) == DEFAULT_POOL_SIZE


def _timed_judge(pred: str, gold: str) -> tuple[bool, str, float]:
    start = time.monotonic()
    verdict, method = judge(pred, gold, timeout_s=TIMEOUT_S)
    return verdict, method, time.monotonic() - start


@pytest.mark.parametrize("pred", [POWER_TOWER, GIANT_FACTORIAL])
def test_pathological_input_times_out_in_main_thread(pred: str) -> None:
    _warm_pool()
    verdict, method, elapsed = _timed_judge(pred, "1")
    assert (verdict, method) == (False, "timeout")
    assert elapsed < TIMEOUT_S + 2
    assert judge("x^2 + 2x + 1", "(x+1)^2") == (True, "symbolic")  # the pool recovered


@pytest.mark.parametrize("pred", [POWER_TOWER, GIANT_FACTORIAL])
def test_pathological_input_times_out_in_worker_thread(pred: str) -> None:
    _warm_pool()
    result = {}
    thread = threading.Thread(target=lambda: result.update(out=_timed_judge(pred, "1")))
    thread.start()
    thread.join()
    verdict, method, elapsed = result["out"]
    assert (verdict, method) == (False, "timeout")
    assert elapsed < TIMEOUT_S + 2


def test_concurrent_threads_get_correct_verdicts() -> None:
    results: dict[int, tuple[bool, str]] = {}
    cases = SYMBOLIC_CASES * 3

    def work(i: int) -> None:
        pred, gold, _ = cases[i]
        results[i] = judge(pred, gold)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(cases))] == [(eq, "symbolic") for _, _, eq in cases]
    assert len(get_pool().pids()) <= DEFAULT_POOL_SIZE


def test_shutdown_kills_workers_and_pool_restarts() -> None:
    assert is_equivalent("x^2-1", "(x-1)(x+1)")
    pids = get_pool().pids()
    assert pids
    shutdown_workers()
    for pid in pids:
        assert not _alive(pid)
    assert is_equivalent("x^2-1", "(x-1)(x+1)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


CHILD_SCRIPT = """
import threading
from sqjax.grading import judge
from sqjax.grading.symbolic import get_pool
out = {}
t = threading.Thread(target=lambda: out.update(r=judge("9^{9^{9^{9}}}", "1", timeout_s=2.0)))
t.start(); t.join()
print(judge("x^2 + 2x + 1", "(x+1)^2"), out["r"], *get_pool().pids())
"""


def test_child_process_times_out_and_leaves_no_workers() -> None:
    """Grading inside another process works, and its workers die when it exits."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("(True, 'symbolic') (False, 'timeout')")
    pids = [int(p) for p in line.split(")")[-1].split()]
    assert pids
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
