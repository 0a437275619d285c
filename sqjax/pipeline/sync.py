"""Keeping the processes of a multi-process run in step around one stage attempt.

Process 0 alone prepares the stage directory and writes the manifest. The others take the
manifest process 0 resumed from out of the runtime's key-value store (never a half-written
directory), process 0 writes the finished manifest only once every process has finished its
part, and no process starts the next stage before that manifest exists. A process that fails
says so, and any process waiting on the others stops with that error instead of waiting for
shards that will never come. All of it goes through the key-value store of JAX's
coordination service; in a one-process run every call is a no-op.
"""

from __future__ import annotations

import json
import logging
import time

from sqjax import distributed
from sqjax.errors import SqjaxError

log = logging.getLogger("sqjax")
POLL_S = 0.5
_attempts = 0


class StageSync:
    """One stage attempt's keys under `sqjax/stage/<n>/<stage>/`.

    `n` counts run_stage calls in this process; every process runs the same stages in the
    same order, so `n` names the same attempt everywhere.
    """

    def __init__(self, stage: str, process_index: int = 0, process_count: int = 1, client=None,
                 attempt: int = 0):
        self.client = client  # None: a one-process run (or a test); every call is a no-op
        self.process_index = process_index
        self.process_count = process_count
        self.prefix = f"sqjax/stage/{attempt}/{stage}"

    @classmethod
    def for_attempt(cls, stage: str, process_index: int, process_count: int) -> StageSync:
        """The next stage attempt of this process, synchronised when the runtime is joined."""
        global _attempts
        _attempts += 1
        client = distributed.client() if process_count > 1 else None
        return cls(stage, process_index, process_count, client, _attempts)

    def announce(self, event: str, value: object = None) -> None:
        """Process 0: `event` happened (prepared, published/<model>), with a JSON value."""
        if self.client is not None:
            self.client.key_value_set(f"{self.prefix}/{event}", json.dumps(value))

    def wait_for(self, event: str, what: str) -> object:
        """The value process 0 announced with `event`; raises when a process failed first."""
        key = f"{self.prefix}/{event}"
        return self._poll(what, lambda: self.client.key_value_try_get(key))

    def meet(self, label: str, what: str) -> None:
        """Blocks until every process has called meet(label) (a barrier that stops, rather
        than waits on, when another process has failed)."""
        if self.client is None:
            return
        self.client.key_value_set(f"{self.prefix}/{label}/{self.process_index}", "null")

        def all_here() -> str | None:
            here = self.client.key_value_dir_get(f"{self.prefix}/{label}/")
            return "null" if len(here) == self.process_count else None

        self._poll(what, all_here)

    def fail(self, error: BaseException) -> None:
        """This process stops with `error`; the others waiting on it stop too."""
        if self.client is None:
            return
        message = f"{type(error).__name__}: {error}"[:2000]
        try:
            self.client.key_value_set(f"{self.prefix}/failed/{self.process_index}", message)
        except Exception:  # noqa: BLE001 - the runtime itself may be what failed
            log.warning("could not tell the other processes that this one failed")

    def check(self) -> None:
        """Raises SqjaxError if another process has failed in this attempt."""
        if self.client is None:
            return
        for key, message in self.client.key_value_dir_get(f"{self.prefix}/failed/"):
            other = key.rsplit("/", 1)[-1]
            if other != str(self.process_index):
                raise SqjaxError(f"process {other} failed in this stage ({message}); fix that and rerun")

    def _poll(self, what: str, get) -> object:
        if self.client is None:
            return None
        t0 = said = time.monotonic()
        while True:
            self.check()
            value = _try(get)
            if value is not None:
                return json.loads(value)
            if time.monotonic() - said >= 60:
                log.info("process %d: waiting for %s (%.0f s)", self.process_index, what,
                         time.monotonic() - t0)
                said = time.monotonic()
            time.sleep(POLL_S)


def _try(get) -> str | None:
    """get(), or None where the key is not there yet."""
    try:
        return get()
    except Exception as e:
        if "NOT_FOUND" in str(e):
            return None
        raise
