"""Compile time of the sampler's decode and insert programs and of one SFT train step, on the
SmolLM2-135M shape (30 layers, float32), with the persistent compilation cache off.

The script only uses entry points that exist before and after the layer stacking, so the same
file measures both: run it once against this checkout and once with an older checkout first on
PYTHONPATH, e.g.

    git worktree add /tmp/before acfefc5
    PYTHONPATH=/tmp/before .venv/bin/python bench/compile.py   # before: unrolled layers
    .venv/bin/python bench/compile.py                          # after: one scanned layer

Each program is lowered and compiled `--repeats` times from a fresh jax cache; the last stdout
line is one JSON object with the medians (seconds) and the machine facts. `--layers 1,30`
also compiles the sampler's programs for a one-layer model of the same shape: the part of a
decode program's compile time that does not depend on depth (the sampler, the loop, the head).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import sqjax
from sqjax.models.config import ModelConfig
from sqjax.models.decoder import create_model
from sqjax.sampling import steps as S
from sqjax.sampling.engine import Engine
from sqjax.sampling.filters import RowSampling
from sqjax.sharding import make_mesh
from sqjax.training.sft import sft_objective
from sqjax.training.step import init_state, make_train_step, state_sharding

SMOLLM2 = ModelConfig(
    family="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30,
    num_heads=9, num_kv_heads=3, head_dim=64, rms_norm_eps=1e-5, rope_theta=100000.0,
    max_position_embeddings=8192, tie_word_embeddings=True,
)  # fmt: skip


def timed_compile(fn, *args, **kw) -> float:
    jax.clear_caches()
    t = time.perf_counter()
    fn.lower(*args, **kw).compile()
    return time.perf_counter() - t


def layouts() -> list[str | None]:
    """The LLM layer layouts this checkout has (None: a checkout without the choice)."""
    try:
        from sqjax.sampling.llm import LAYOUTS
    except ImportError:
        return [None]
    return [x for x in LAYOUTS if x != "auto"]


def sampler_programs(model, batch: int, cache: int, layout: str | None):
    """(decode seconds, insert seconds) for `batch` slots of `cache` slots."""
    try:  # the LLM handle owns the weights and programs (since the layer stacking)
        from sqjax.sampling.llm import LLM

        llm = LLM(model) if layout is None else LLM(model, layout=layout)
        engine = Engine(llm, max_batch=batch)
    except ImportError:
        engine = Engine(model, max_batch=batch)
    slots = engine._init_slots(batch, cache, 4)
    decode_fn, insert_fn, _ = engine._programs(slots)
    kill = np.zeros((batch,), bool)
    decode = timed_compile(
        decode_fn, engine.graphdef, engine.weights, slots, kill, steps=16, span=cache,
        with_logprobs=False,
    )  # fmt: skip
    U, L = 4, 128
    ids = np.zeros((U, L), np.int32)
    ctx = np.full((U,), L, np.int32)
    insert = timed_compile(
        insert_fn, engine.graphdef, engine.weights, slots, ids, ctx, ctx, _new_rows(batch)
    )
    return decode, insert


def _new_rows(batch: int) -> S.NewRows:
    i32, f32, u32 = (np.zeros((batch,), t) for t in (np.int32, np.float32, np.uint32))
    return S.NewRows(
        src_M=i32, slot_M=i32, rows=RowSampling(f32, i32, f32 + 1, f32), min_tokens_M=i32,
        max_tokens_M=i32, stop_ME=np.full((batch, 4), -1, np.int32), seed_M=u32, request_M=u32,
        index_M=u32,
    )  # fmt: skip


def train_step(model, rows: int, length: int) -> float:
    """Seconds to compile one SFT step (AdamW) on a one-device mesh."""
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    graphdef, params = nnx.split(model, nnx.Param)
    opt = optax.adamw(1e-5)
    sharding = state_sharding(params, opt, mesh)
    state = init_state(params, opt, sharding)
    shapes = {
        k: (1, rows, length) for k in ("tokens", "positions", "segment_ids", "targets", "weights")
    }
    step = make_train_step(graphdef, sft_objective(), opt, optax.constant_schedule(1e-5), sharding,
                           shapes, mesh)  # fmt: skip
    batch = {
        k: jnp.zeros(s, jnp.float32 if k == "weights" else jnp.int32) for k, s in shapes.items()
    }
    return timed_compile(step, state, batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", default="30", help="comma-separated depths for the sampler")
    args = ap.parse_args()
    jax.config.update("jax_enable_compilation_cache", False)
    depths = [int(x) for x in args.layers.split(",")]
    models = {n: create_model(dataclasses.replace(SMOLLM2, num_layers=n)) for n in depths}
    figures: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for n, model in models.items():
            for layout in layouts():
                decode, insert = sampler_programs(model, batch=32, cache=1024, layout=layout)
                suffix = (f"_{layout}" if layout else "") + (
                    "" if n == SMOLLM2.num_layers else f"_{n}layer"
                )
                figures.setdefault(f"decode{suffix}", []).append(decode)
                figures.setdefault(f"insert{suffix}", []).append(insert)
        figures.setdefault("train_step", []).append(train_step(models[max(depths)], 8, 256))
        print({k: round(v[-1], 2) for k, v in figures.items()}, flush=True)
    out = {
        "sqjax": os.path.dirname(sqjax.__file__),
        "jax": jax.__version__,
        "load": os.getloadavg(),
        **{f"{k}_s": round(statistics.median(v), 2) for k, v in figures.items()},
        "all": figures,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
