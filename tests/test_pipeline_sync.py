"""StageSync against an in-memory stand-in of the coordination service's key-value store:
waits end with the announced value, and a failure anywhere stops every waiting process
(the two-process runs themselves are in test_multiprocess.py)."""

from __future__ import annotations

import threading
import time

import pytest

from sqjax.errors import SqjaxError
from sqjax.pipeline import sync as sync_mod
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.sync import StageSync


class FakeStore:
    """key_value_set / key_value_try_get / key_value_dir_get, as JAX's client has them."""

    def __init__(self):
        self.kv: dict[str, str] = {}
        self.lock = threading.Lock()

    def key_value_set(self, key: str, value: str) -> None:
        with self.lock:
            self.kv[key] = value

    def key_value_try_get(self, key: str) -> str:
        with self.lock:
            if key not in self.kv:
                raise RuntimeError(f"NOT_FOUND: Config key {key} not found.")
            return self.kv[key]

    def key_value_dir_get(self, prefix: str) -> list[tuple[str, str]]:
        with self.lock:
            return sorted((k, v) for k, v in self.kv.items() if k.startswith(prefix))


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(sync_mod, "POLL_S", 0.01)


def pair(store, stage="s", count=2):
    return [StageSync(stage, i, count, store, attempt=1) for i in range(count)]


def later(seconds, fn, *args):
    t = threading.Timer(seconds, fn, args)
    t.start()
    return t


def test_wait_returns_what_process_0_announced():
    p0, p1 = pair(FakeStore())
    later(0.05, p0.announce, "prepared", {"attempts": 3})
    assert p1.wait_for("prepared", "prepare") == {"attempts": 3}


def test_a_failure_stops_a_waiting_process_with_its_message():
    p0, p1 = pair(FakeStore())
    later(0.05, p0.fail, SqjaxError("run/x holds files but no manifest.json"))
    with pytest.raises(SqjaxError, match=r"process 0 failed in this stage .*no manifest.json"):
        p1.wait_for("prepared", "prepare")


def test_meet_waits_for_every_process_and_stops_on_a_failure():
    store = FakeStore()
    p0, p1, p2 = pair(store, count=3)
    errors = []

    def meet_1():
        try:
            p1.meet("ran", "x")
        except SqjaxError as e:
            errors.append(str(e))

    t1 = later(0.05, meet_1)
    t0 = time.monotonic()
    later(0.2, p2.fail, RuntimeError("out of memory"))
    with pytest.raises(SqjaxError, match="process 2 failed"):
        p0.meet("ran", "x")
    assert time.monotonic() - t0 >= 0.2
    t1.join()
    assert len(errors) == 1 and "process 2 failed" in errors[0]
    p3 = StageSync("s", 0, 1, FakeStore(), attempt=1)
    p3.meet("ran", "x")  # alone: returns at once


def test_a_process_does_not_stop_on_its_own_failure_record():
    p0, _ = pair(FakeStore())
    p0.fail(RuntimeError("mine"))
    p0.check()


def test_attempts_do_not_see_each_others_keys():
    store = FakeStore()
    StageSync("s", 1, 2, store, attempt=1).fail(RuntimeError("old attempt"))
    StageSync("s", 0, 2, store, attempt=2).check()


def test_shard_wait_stops_when_another_process_fails(tmp_path):
    """Process 0 waits for process 1's shard; process 1 fails instead of writing it."""
    store = FakeStore()
    p0, p1 = pair(store)
    ctx = StageContext("s", None, None, tmp_path, {}, (), 0, 2, p0)
    later(0.1, p1.fail, RuntimeError("killed by the OOM killer"))
    with pytest.raises(SqjaxError, match="process 1 failed.*OOM"):
        ctx._wait_for_chunks(tmp_path / "s", 1)


def test_without_a_runtime_every_call_is_a_no_op():
    alone = StageSync("s", 0, 1)
    alone.announce("prepared", {"x": 1})
    assert alone.wait_for("prepared", "x") is None
    alone.meet("ran", "x")
    alone.fail(RuntimeError("x"))
    alone.check()
