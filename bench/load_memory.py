"""Peak host memory of loading a model: for sampling (the model's dtype onto one device)
and for training (float32 master weights onto an 8-device FSDP x tensor mesh, TRAIN_RULES).

A random model of the SmolLM2-135M shape in float32 (~540 MB, its largest tensor the 113 MB
embedding) is exported as an HF directory; each load runs under tracemalloc, which sees the
host arrays the loader reads and converts (numpy reports its allocations to it), not the
device buffers (XLA's allocator). The loader's promise: peak <= the largest single tensor
plus a small constant, never a whole-model copy. The last stdout line is one JSON object.

    .venv/bin/python bench/load_memory.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import tracemalloc

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from compile import SMOLLM2

from sqjax.checkpoints.api import export_hf, load_model
from sqjax.models.decoder import create_model
from sqjax.sharding import TRAIN_RULES, make_mesh


def peak_of(fn) -> tuple[int, float]:
    tracemalloc.start()
    t = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        model = create_model(SMOLLM2)
        export_hf(model, d)
        del model
        sizes = {}
        for name in os.listdir(d):
            if name.endswith(".safetensors"):
                from safetensors import safe_open

                with safe_open(os.path.join(d, name), "numpy") as f:
                    for k in f.keys():  # noqa: SIM118
                        sizes[k] = int(np.prod(f.get_slice(k).get_shape())) * 4
        largest, total = max(sizes.values()), sum(sizes.values())
        sample_peak, sample_s = peak_of(lambda: load_model(d, dtype="float32"))
        mesh = make_mesh(data=1, fsdp=4, tensor=2)
        train_peak, train_s = peak_of(
            lambda: load_model(d, dtype="float32", param_dtype="float32", mesh=mesh, rules=TRAIN_RULES)
        )
    mb = 1 / 2**20
    out = {
        "model_mb": round(total * mb, 1),
        "largest_tensor_mb": round(largest * mb, 1),
        "sampling_load_peak_mb": round(sample_peak * mb, 1),
        "sampling_load_s": round(sample_s, 2),
        "training_load_peak_mb": round(train_peak * mb, 1),
        "training_load_s": round(train_s, 2),
        "training_mesh": dict(mesh.shape),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
