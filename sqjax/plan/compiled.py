"""One program compiled ahead of time for a TPU topology, and what its compile tells:
memory per device (compiled.memory_analysis: arguments + outputs + temporaries, or the peak
where libtpu reports a larger one), FLOPs per call (compiled.cost_analysis, loop bodies
scaled by trip counts, plus the Pallas attention kernels' analytic FLOPs, which XLA does not
count: sqjax/plan/kernels.py), bytes per call (counted from the optimized HLO, loop bodies
scaled by trip counts and a layer's slice of stacked arrays at its own size: sqjax/plan/hlo.py)
and compile time. A program too large for HBM fails to compile; its error gives what it needed."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

import jax

from sqjax.plan.hlo import loop_scale

GIB = 1024**3
_UNITS = {"K": 1024, "M": 1024**2, "G": GIB, "T": 1024**4}
_NEEDED = (
    re.compile(
        r"required for [\w ]+ \(([\d.]+)([KMGT])\) exceeds available HBM \(([\d.]+)([KMGT])\)"
    ),
    re.compile(r"Used ([\d.]+)([KMGT]) of ([\d.]+)([KMGT]) hbm"),
)


@dataclasses.dataclass(frozen=True)
class Figures:
    """Per device of the topology's view; FLOPs and bytes per call of the program."""

    name: str
    fits: bool
    capacity_bytes: float
    total_bytes: float  # max(arguments + outputs - aliased + temporaries, peak) (or the OOM's)
    argument_bytes: float = 0.0
    output_bytes: float = 0.0
    alias_bytes: float = 0.0
    temp_bytes: float = 0.0
    summed_bytes: float = 0.0  # arguments + outputs - aliased + temporaries + code
    peak_bytes: float = 0.0  # memory_analysis().peak_memory_in_bytes (0: not reported)
    flops: float = 0.0  # XLA's, trip-scaled, + kernel_flops
    kernel_flops: float = 0.0  # the attention kernels' (sqjax/plan/kernels.py), trip-scaled
    bytes_accessed: float = 0.0  # hlo.py's count (XLA's, trip-scaled, if the parse found none)
    xla_flops: float = 0.0  # as cost_analysis counts them (each loop body once)
    xla_bytes: float = 0.0
    trip_counts: tuple[int, ...] = ()
    attention_kernel: str = "xla"  # "splash" where its Pallas calls are in the program
    compile_seconds: float = 0.0
    error: str | None = None

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB


def figures(name: str, lower: Callable[[], Any], capacity_bytes: float) -> Figures:
    """Compiles `lower()` (a jax.stages.Lowered) and reads its figures. It lowers at the
    default matmul precision, as a TPU run does: Mosaic has no bf16 dot at "highest" (the
    tests' setting), so a splash kernel lowered there fails to compile."""
    t0 = time.perf_counter()
    with jax.default_matmul_precision("default"):
        lowered = lower()
    try:
        compiled = lowered.compile()
    except Exception as e:  # noqa: BLE001 - XLA raises one runtime error type for everything
        return _failed(name, str(e), capacity_bytes, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    m = compiled.memory_analysis()
    total = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
    total += m.temp_size_in_bytes + m.generated_code_size_in_bytes
    peak = float(getattr(m, "peak_memory_in_bytes", 0) or 0)
    summed, total = float(total), max(float(total), peak)  # Pallas buffers can pass the sum
    cost = compiled.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, list) else cost
    scale = loop_scale(compiled.as_text())
    flops, nbytes = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
    return Figures(
        name=name,
        fits=total <= capacity_bytes,
        capacity_bytes=capacity_bytes,
        total_bytes=total,
        argument_bytes=float(m.argument_size_in_bytes),
        output_bytes=float(m.output_size_in_bytes),
        alias_bytes=float(m.alias_size_in_bytes),
        temp_bytes=float(m.temp_size_in_bytes),
        summed_bytes=summed,
        peak_bytes=peak,
        flops=flops * scale.flops + scale.kernel_flops,
        kernel_flops=scale.kernel_flops,
        bytes_accessed=scale.hlo_bytes or nbytes * scale.bytes,
        xla_flops=flops,
        xla_bytes=nbytes,
        trip_counts=scale.trip_counts,
        attention_kernel="+".join(scale.kernels) or "xla",
        compile_seconds=seconds,
    )


def _failed(name: str, message: str, capacity_bytes: float, seconds: float) -> Figures:
    """An out-of-memory compile: what it needed, from XLA's message; anything else re-raised."""
    if "RESOURCE_EXHAUSTED" not in message and "Ran out of memory" not in message:
        raise RuntimeError(f"{name}: compile failed: {message.splitlines()[0]}")
    needed = float("nan")
    for pattern in _NEEDED:
        if (m := pattern.search(message)) is not None:
            needed = float(m.group(1)) * _UNITS[m.group(2)]
            capacity_bytes = float(m.group(3)) * _UNITS[m.group(4)]
            break
    line = next((x for x in message.splitlines() if "memory" in x.lower()), message.splitlines()[0])
    return Figures(name, False, capacity_bytes, needed, compile_seconds=seconds, error=line.strip())
