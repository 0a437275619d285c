"""Joining JAX's multi-process runtime: one process per host, one global device mesh.

On a multi-host TPU VM slice `jax.distributed.initialize()` finds its peers by itself; on
other machines (GPU hosts, or CPU processes in tests) the coordinator address, process count
and process id are given explicitly, by CLI flags or the SQJAX_COORDINATOR,
SQJAX_NUM_PROCESSES and SQJAX_PROCESS_ID environment variables. CPU processes use gloo
collectives.
"""

from __future__ import annotations

import os

from sqjax.errors import SqjaxError

_initialized = False


def on_multihost_tpu() -> bool:
    """True on a TPU VM that is one worker of a multi-host slice."""
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return "," in hosts


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Joins the multi-process runtime when asked to or when on a multi-host TPU slice.

    Returns whether this process is now part of a multi-process run. Safe to call twice.
    """
    global _initialized
    coordinator = coordinator or os.environ.get("SQJAX_COORDINATOR")
    num_processes = num_processes or _env_int("SQJAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("SQJAX_PROCESS_ID")
    if _initialized:
        return True
    if coordinator:
        import jax

        if num_processes is None or process_id is None:
            raise SqjaxError(
                f"coordinator {coordinator!r} given without the process count and id; pass "
                "--num-processes and --process-id (or SQJAX_NUM_PROCESSES / SQJAX_PROCESS_ID)"
            )
        if not 0 <= process_id < num_processes:
            raise SqjaxError(f"process id {process_id} is not in [0, {num_processes}); ids count from 0")
        # Only affects computations on CPU devices; GPU hosts use NCCL regardless.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    elif on_multihost_tpu():
        import jax

        jax.distributed.initialize()
    else:
        return False
    _initialized = True
    return True


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise SqjaxError(f"{name}={value!r} is not an integer") from None


def client():
    """The runtime's coordination client (key-value store, barriers), or None when this
    process is not part of a multi-process run."""
    if not _initialized:
        return None
    from jax._src import distributed  # the client has no public accessor; orbax uses it too

    return distributed.global_state.client

