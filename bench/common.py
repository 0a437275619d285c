"""What the benchmarks share: the ~55M Qwen2 config, the machine facts every JSON line records,
stderr logging and a timer."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time

import torch

# The part-a model of bench/sampler.py and the model of bench/train.py (~55M parameters).
QWEN2_55M = {
    "vocab_size": 32000,
    "hidden_size": 512,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "intermediate_size": 1408,
    "max_position_embeddings": 4096,
}


def cpu_facts() -> dict:
    """What the figures depend on beyond the core count: the CPU model, the vector instructions
    it exposes (XLA CPU gains more from AVX-512 than PyTorch does; bench/RESULTS.md has the
    same code on both kinds of VM) and PyTorch's kernel level."""
    facts = {"torch": torch.backends.cpu.get_cpu_capability()}
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines())
    except (OSError, ValueError):
        return facts
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("flags", "").split())
    facts["model"] = info.get("model name", platform.processor())
    facts["isa"] = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return facts


def run_facts() -> dict:
    """The facts recorded before a run: machine, CPU, load average."""
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "cpu": cpu_facts(),
        "load_before": os.getloadavg(),
    }


def end_facts() -> dict:
    """The facts recorded after a run: load average, peak RSS, `uptime`."""
    out = {
        "load_after": os.getloadavg(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    try:
        out["uptime"] = subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        pass
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out
