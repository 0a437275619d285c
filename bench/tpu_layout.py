"""Decode bytes per step of the sampler's two layer layouts on a TPU slice, compiled ahead of
time without a TPU (sqjax.plan's programs and its HLO byte count): the check behind
`sqjax.LLM(layout="auto")` choosing "stacked" on TPU and "layers" elsewhere.

Qwen2-Math-7B's layer shape with --layers layers, v5e-8 as data 4 x tensor 2, 64 slots of a
2,560-slot cache, one 16-step decode call attending --spans slots. The minimum per step is
each device's weights plus its share of the attended cache, read once. The last stdout line
is one JSON object.

    python bench/tpu_layout.py [--layers 4] [--spans 2560,1280]
"""

from __future__ import annotations

import argparse
import json
import time

from sqjax.plan import programs as P
from sqjax.plan.compiled import figures
from sqjax.plan.topology import devices
from sqjax.sharding import make_mesh

DATA, TENSOR, SLOTS, CACHE = 4, 2, 64, 2560


def one(cfg, mesh, layout: str, span: int) -> dict:
    s = P.SampleShape(slots=SLOTS, cache_len=CACHE, prompt_len=512, unique=16, layout=layout)
    t = time.perf_counter()
    f = figures("decode", lambda: P.decode(cfg, mesh, s, span=span), 15.75 * 1024**3)
    weights = P.weight_bytes_per_device(cfg, mesh, "bfloat16")
    kv = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 2 * span * SLOTS / DATA / TENSOR
    step = f.bytes_accessed / s.chunk
    return {
        "compile_s": round(time.perf_counter() - t, 1),
        "fits": f.fits,
        "gib_per_device": round(f.total_gib, 2),
        "bytes_per_step_gb": round(step / 1e9, 3),
        "minimum_gb": round((weights + kv) / 1e9, 3),
        "ratio": round(step / (weights + kv), 2),
    }


def main() -> None:
    from sqjax.models.presets import preset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--spans", default="2560,1280")
    args = ap.parse_args()
    cfg = preset("Qwen/Qwen2-Math-7B-Instruct").replace(
        num_layers=args.layers, dtype="bfloat16", param_dtype="bfloat16"
    )
    mesh = make_mesh(DATA, 1, TENSOR, devices=devices("v5e-8"))
    out = {"layers": args.layers, "topology": "v5e-8", "slots": SLOTS, "cache": CACHE}
    for span in (int(x) for x in args.spans.split(",")):
        for layout in ("stacked", "layers"):
            out[f"{layout}_span{span}"] = one(cfg, mesh, layout, span)
            print(layout, span, out[f"{layout}_span{span}"], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
