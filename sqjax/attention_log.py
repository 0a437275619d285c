"""Which attention kernel each device program ran (sqjax.models.kernels), counted per call,
for the log and the stage manifest (`attention_kernels`). JAX-free, like compile_budget: the
runner reads it without importing a model.

The programs are named by what they do: `train_step`, `reference` (DPO's frozen reference
log-probs), `prefill` (the sampler's insert) and `score` (log-prob, judge and reward
scoring). A kernel is "splash", "cudnn", "triton" or "xla", or e.g. "splash+xla" when a
model's layers run different ones.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

log = logging.getLogger(__name__)
_lock = threading.Lock()
_calls: Counter = Counter()  # (program, kernel) -> calls in this process


def ran(program: str, kernel: str, detail: str = "") -> None:
    """Counts one call of `program` with `kernel`; logs the first of each pair."""
    with _lock:
        first = (program, kernel) not in _calls
        _calls[program, kernel] += 1
    if first:
        log.info("attention: %s runs %s%s", program, kernel, f" ({detail})" if detail else "")


def snapshot() -> Counter:
    with _lock:
        return Counter(_calls)


def since(before: Counter) -> dict[str, str]:
    """{program: kernel(s)} of the calls made since `before` (a snapshot)."""
    with _lock:
        new = [key for key, n in _calls.items() if n > before.get(key, 0)]
    out: dict[str, set[str]] = {}
    for program, kernel in new:
        out.setdefault(program, set()).update(kernel.split("+"))
    return {program: "+".join(sorted(kernels)) for program, kernels in sorted(out.items())}
