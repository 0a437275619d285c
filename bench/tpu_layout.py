"""Decode bytes per step of the sampler's two layer layouts on a TPU slice, compiled ahead of
time without a TPU (sqjax.plan's programs and its HLO byte count): the check behind
`sqjax.LLM(layout="auto")` choosing "stacked" on TPU and "layers" elsewhere, and of how close
a decode step comes to reading each byte it needs once.

A model's layer shape with --layers layers (default: Qwen2-Math-7B, 4 layers) on --topology
as data x tensor, --slots slots of a --cache-slot cache, one 16-step decode call attending
--spans slots. The minimum per step is the weights a step reads on each device (all but an
untied model's embedding table, of which it gathers its rows) plus its share of the attended
cache, read once. --hlo DIR writes each program's optimized HLO there. The last stdout line
is one JSON object.

    python bench/tpu_layout.py [--layers 4] [--spans 2560,1280]
    python bench/tpu_layout.py --topology v5p-8 --data 4 --tensor 1 --slots 256 --cache 1024 \
        --spans 1024 --layouts stacked --layers 28 --model deepseek-ai/deepseek-math-7b-rl
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from sqjax.plan import programs as P
from sqjax.plan.compiled import figures
from sqjax.plan.roofline import device
from sqjax.plan.topology import devices, topology
from sqjax.sharding import make_mesh


def one(cfg, mesh, args, layout: str, span: int, hlo_dir: pathlib.Path | None) -> dict:
    s = P.SampleShape(
        slots=args.slots, cache_len=args.cache, prompt_len=512, unique=16, layout=layout
    )
    t = time.perf_counter()
    lowered = {}

    def lower():
        lowered["program"] = P.decode(cfg, mesh, s, span=span)
        return lowered["program"]

    capacity = device(topology(args.topology)).hbm_bytes
    f = figures("decode", lower, capacity)
    if hlo_dir is not None:
        hlo_dir.mkdir(parents=True, exist_ok=True)
        text = lowered["program"].compile().as_text()
        (hlo_dir / f"decode_{layout}_span{span}.hlo").write_text(text)
    weights = P.weight_bytes_per_device(cfg, mesh, "bfloat16", read_per_step=True)
    K, H, L = cfg.num_kv_heads, cfg.head_dim, cfg.num_layers
    kv_shards = args.data * min(args.tensor, K)  # kv heads split over the tensor axis
    kv = 2 * L * K * H * 2 * span * args.slots / kv_shards
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
    ap.add_argument("--model", default="Qwen/Qwen2-Math-7B-Instruct")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--topology", default="v5e-8")
    ap.add_argument("--data", type=int, default=4)
    ap.add_argument("--tensor", type=int, default=2)
    ap.add_argument("--slots", type=int, default=64, help="decode rows over all devices")
    ap.add_argument("--cache", type=int, default=2560)
    ap.add_argument("--spans", default="2560,1280")
    ap.add_argument("--layouts", default="stacked,layers")
    ap.add_argument("--hlo", type=pathlib.Path, default=None)
    args = ap.parse_args()
    cfg = preset(args.model).replace(
        num_layers=args.layers, dtype="bfloat16", param_dtype="bfloat16"
    )
    mesh = make_mesh(args.data, 1, args.tensor, devices=devices(args.topology))
    out = {k: v for k, v in vars(args).items() if k != "hlo"}
    for span in (int(x) for x in args.spans.split(",")):
        for layout in args.layouts.split(","):
            out[f"{layout}_span{span}"] = one(cfg, mesh, args, layout, span, args.hlo)
            print(layout, span, out[f"{layout}_span{span}"], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
