"""JAX's persistent compilation cache, on by default for the CLI.

Each stage is a fresh set of jitted programs over the same model shapes; on a CPU or a TPU
host, compiling a 30-layer decoder takes tens of seconds, and a rerun after preemption would
pay it again. XLA's on-disk cache keys programs by their HLO, flags and JAX version, so a hit
is always the same program. SQJAX_COMPILE_CACHE=0 turns it off; SQJAX_CACHE moves it.
"""

from __future__ import annotations

import os


def enable(directory: str | None = None) -> str | None:
    """Points JAX at the on-disk cache; returns its directory (None when disabled)."""
    if os.environ.get("SQJAX_COMPILE_CACHE", "1") == "0":
        return None
    import jax

    base = os.environ.get("SQJAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sqjax")
    directory = directory or os.path.join(base, "xla")
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return directory
