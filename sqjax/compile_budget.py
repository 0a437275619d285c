"""How many XLA programs a process compiled and how long it took, from JAX's own
monitoring events (no wrapper around jit): every backend compilation reports its duration,
and a persistent-cache hit reports itself as well. The stage runner records the counts of
each attempt in the manifest (`compile`) and the report's cost table shows them."""

from __future__ import annotations

import dataclasses
import threading

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax._src.dispatch
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"  # jax._src.compiler


@dataclasses.dataclass(frozen=True)
class Compiles:
    programs: int = 0  # programs built, by XLA or from the persistent cache
    cache_hits: int = 0  # of which read from the persistent compilation cache
    seconds: float = 0.0  # wall time spent building them

    def __sub__(self, other: Compiles) -> Compiles:
        return Compiles(
            self.programs - other.programs,
            self.cache_hits - other.cache_hits,
            self.seconds - other.seconds,
        )

    def __add__(self, other: Compiles) -> Compiles:
        return Compiles(
            self.programs + other.programs,
            self.cache_hits + other.cache_hits,
            self.seconds + other.seconds,
        )

    def as_dict(self) -> dict:
        return {"programs": self.programs, "cache_hits": self.cache_hits,
                "seconds": round(self.seconds, 3)}  # fmt: skip


_lock = threading.Lock()
_total = Compiles()
_installed = False


def _on_duration(event: str, duration: float, **_) -> None:
    global _total
    if event == COMPILE_EVENT:
        with _lock:
            _total = _total + Compiles(1, 0, duration)


def _on_event(event: str, **_) -> None:
    global _total
    if event == CACHE_HIT_EVENT:
        with _lock:
            _total = _total + Compiles(0, 1, 0.0)


def totals() -> Compiles:
    """This process's compilations so far (counting starts at the first call)."""
    global _installed
    if not _installed:
        import jax

        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        jax.monitoring.register_event_listener(_on_event)
        _installed = True
    return _total
