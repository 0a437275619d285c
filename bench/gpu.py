"""GPU benchmark (one NVIDIA GPU): sqjax's decode and SFT train step in bfloat16 on the paper's
model shapes, against the roofline measured on the same GPU and against torch + transformers.

- Roofline: the best bf16 matmul rate (torch.mm and jnp.dot, 8192^3) and the HBM copy
  bandwidth (bytes read + written per second), both measured here, first.
- Decode: Qwen2-Math-7B's shape (random weights, the same tensors on both sides), prompt 64
  tokens, exactly 128 new tokens, greedy, batch 1 and 256: HF `generate` (sdpa, dynamic cache)
  against one `sqjax.LLM` handle per batch size; sqjax's decode milliseconds per step against
  the bytes a step must read (weights + live KV cache) over the measured bandwidth.
- Decode trace: one more sqjax generate call under `jax.profiler`, its GPU op events summed
  (bench/trace_summary.py `device_summary`): busy vs. wall time (the gap is the host: launches,
  Python, transfers) and the slowest ops by kind (matmul, attention, copy, other), i.e. where
  a step falls short of the roofline. vLLM runs beside HF when it is installed.
- Train: Qwen2-Math-1.5B's shape, one SFT step (AdamW, bf16 parameters on both sides) on 8 x
  1024 and 2 x 4096 packed tokens, against bench/train.py's plain PyTorch loop (sdpa); sqjax
  once per attention kernel of --kernels (auto: the best one that works on this GPU; cudnn
  needs unpacked rows, so packed rows get the Pallas Triton kernel, or XLA with a log line);
  MFU against the measured matmul rate.
- Parity: the 1.5B model's logits, sqjax vs transformers, in bf16.

Each section writes its figures to --out/gpu.json as soon as they are known, and the run skips
what is left once --budget seconds have passed, so a cut-short run still reports. The last
stdout line is the JSON object.

    python bench/gpu.py [--tiny] [--budget 480] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch shares the GPU
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import torch
from common import log
from flax import nnx
from trace_summary import device_summary
from train import OPTIM, SqjaxTrainer, TorchTrainer, sft_batch, torch_batch

from sqjax.checkpoints.convert import load_from_tensors
from sqjax.models import kernels
from sqjax.models.hf_config import from_hf_config
from sqjax.sampling.api import LLM, SamplingParams

QWEN2_7B = {  # Qwen/Qwen2-Math-7B's config.json
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
}
QWEN2_1_5B = QWEN2_7B | {  # Qwen/Qwen2-Math-1.5B's config.json
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
}
TINY = QWEN2_7B | {
    "vocab_size": 512,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
PROMPT, NEW = 64, 128
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: --tiny smoke runs only
DEV_PLATFORM = "gpu" if DEV == "cuda" else "cpu"


def sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


class Report:
    """The figures so far, rewritten to OUT/gpu.json after every section."""

    def __init__(self, out: str | None, budget: float, name: str = "gpu.json"):
        self.path = os.path.join(out, name) if out else None
        if out:
            os.makedirs(out, exist_ok=True)
        self.t0, self.budget = time.perf_counter(), budget
        self.data: dict = {}

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.data["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        log(f"[{key}] {json.dumps(value)}")
        if self.path:
            with open(self.path + ".tmp", "w") as f:
                json.dump(self.data, f, indent=1)
            os.replace(self.path + ".tmp", self.path)


def gpu_time(fn, reps: int) -> list[float]:
    """Seconds per call, each call followed by a device sync (torch's and JAX's)."""
    out = []
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        jax.block_until_ready(fn())
        sync()
        out.append(time.perf_counter() - t)
    return out


def roofline(tiny: bool) -> dict:
    """Measured bf16 matmul TFLOP/s (best of torch and JAX) and HBM GB/s (copy, read + write)."""
    n = 1024 if tiny else 8192
    a = torch.randn(n, n, device=DEV, dtype=torch.bfloat16)
    ja = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.bfloat16)
    dot = jax.jit(jnp.dot)
    mm = {
        "torch": min(gpu_time(lambda: torch.mm(a, a), 12)[2:]),
        "jax": min(gpu_time(lambda: dot(ja, ja), 12)[2:]),
    }
    elems = (2**26 if tiny else 2**31) // 2  # 64 MiB / 2 GiB of bf16
    src = torch.empty(elems, device=DEV, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    jsrc = jnp.zeros(elems, jnp.bfloat16)
    copy = jax.jit(lambda x: x + 1)  # one read, one write
    bw = {
        "torch": min(gpu_time(lambda: dst.copy_(src), 12)[2:]),
        "jax": min(gpu_time(lambda: copy(jsrc), 12)[2:]),
    }
    out = {f"matmul_tflops_{k}": round(2 * n**3 / t / 1e12, 1) for k, t in mm.items()}
    out |= {f"copy_gbs_{k}": round(4 * elems / t / 1e9, 1) for k, t in bw.items()}
    out["peak_tflops"] = max(out["matmul_tflops_torch"], out["matmul_tflops_jax"])
    out["peak_gbs"] = max(out["copy_gbs_torch"], out["copy_gbs_jax"])
    out["matmul_n"], out["copy_bytes"] = n, 2 * elems
    return out


def numpy_of(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).cpu().numpy().view(ml_dtypes.bfloat16)
    return t.cpu().numpy()


def build(shape: dict):
    """(HF model on the GPU in bf16, random init; sqjax Decoder from the same tensors; config)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    hc = Qwen2Config(**shape, attn_implementation="sdpa")
    with torch.device(DEV):
        torch.set_default_dtype(torch.bfloat16)
        hf = Qwen2ForCausalLM(hc)
        torch.set_default_dtype(torch.float32)
    sd = hf.state_dict()
    cfg = from_hf_config(hc.to_dict(), dtype="bfloat16", param_dtype="bfloat16")
    ours = load_from_tensors(cfg, sd.keys(), lambda k: numpy_of(sd[k]))
    return hf, ours, hc


def param_bytes(hf) -> int:
    return sum(p.numel() * p.element_size() for p in hf.parameters())


def kv_bytes_per_token(hc) -> int:
    head_dim = hc.hidden_size // hc.num_attention_heads
    return 2 * hc.num_hidden_layers * hc.num_key_value_heads * head_dim * 2  # k and v, bf16


def decode_case(hf, ours, hc, B: int, reps: int, peak: dict, layouts: list[str]) -> dict:
    """HF generate against one sqjax.LLM handle per layer layout, interleaved."""
    rng = np.random.default_rng(B)
    prompts = rng.integers(3, hc.vocab_size, (B, PROMPT))
    ids = torch.tensor(prompts, device=DEV)
    gen = {"do_sample": False, "max_new_tokens": NEW, "min_new_tokens": NEW, "pad_token_id": 0}

    def run_hf():
        with torch.inference_mode():
            return hf.generate(ids, attention_mask=torch.ones_like(ids), **gen)

    sp = SamplingParams(temperature=0.0, max_tokens=NEW, ignore_eos=True, seed=0)
    llms = {lay: LLM(ours, max_batch=B, layout=lay) for lay in layouts}
    runs = {lay: (lambda llm=llm: llm.generate(prompts.tolist(), sp)) for lay, llm in llms.items()}
    first = {lay: gpu_time(run, 1)[0] for lay, run in runs.items()}  # compiles
    hf_t, sq_t, steps = [], {lay: [] for lay in llms}, {lay: [] for lay in llms}
    run_hf()  # warm-up
    for _ in range(reps):
        hf_t.append(gpu_time(run_hf, 1)[0])
        for lay, run in runs.items():
            sq_t[lay].append(gpu_time(run, 1)[0])
            s = llms[lay].stats
            steps[lay].append(s["decode_seconds"] / max(1, s["decode_calls"] * llms[lay].chunk))
    hf_s = statistics.median(hf_t)
    trace = decode_trace(runs[layouts[-1]], llms[layouts[-1]])
    # a step reads every weight once and the live cache (mean context: prompt + NEW/2)
    step_bytes = param_bytes(hf) + B * (PROMPT + NEW // 2) * kv_bytes_per_token(hc)
    floor_s = step_bytes / (peak["peak_gbs"] * 1e9)
    out = {
        "hf_tok_s": round(B * NEW / hf_s, 1),
        "roofline_ms_per_step": round(floor_s * 1e3, 3),
        "roofline_tok_s": round(B / floor_s, 1),
    }
    out["trace_" + layouts[-1]] = trace
    out["vllm"] = vllm_case(hf, prompts, NEW)
    for lay, llm in llms.items():
        sq_s, step_s = statistics.median(sq_t[lay]), statistics.median(steps[lay])
        out[lay] = {
            "sqjax_tok_s": round(B * NEW / sq_s, 1),
            "ratio": round(hf_s / sq_s, 2),
            "sqjax_first_call_s": round(first[lay], 1),
            "sqjax_decode_ms_per_step": round(step_s * 1e3, 3),
            "fraction_of_roofline": round(floor_s / step_s, 3),
            "sqjax_stats": {
                k: (round(v, 3) if isinstance(v, float) else v) for k, v in llm.stats.items()
            },
        }
    return out


def decode_trace(run, llm) -> dict:
    """One generate call under jax.profiler: GPU busy vs. wall time and its slowest ops."""
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        with jax.profiler.trace(d, profiler_options=options):
            jax.block_until_ready(run())
        wall = time.perf_counter() - t
        summary = device_summary(d)
    steps = max(1, llm.stats.get("decode_calls", 0) * llm.chunk)
    return summary | {"wall_ms": round(wall * 1e3, 1), "decode_steps": steps}


def vllm_case(hf, prompts: np.ndarray, new: int) -> dict | str:
    """vLLM's greedy decode of the same weights and prompts, when it is installed (the device
    image may lack it, and nothing can be installed there). It gets a third of the GPU's
    memory beside JAX's and torch's."""
    try:
        import vllm
    except ImportError:
        return "not installed in this image (no network there to install it)"
    try:
        with tempfile.TemporaryDirectory() as d:
            hf.save_pretrained(d)
            engine = vllm.LLM(
                model=d,
                tokenizer=None,
                skip_tokenizer_init=True,
                dtype="bfloat16",
                gpu_memory_utilization=0.33,
                max_model_len=PROMPT + new,
            )
            params = vllm.SamplingParams(temperature=0.0, max_tokens=new, ignore_eos=True)
            inputs = [{"prompt_token_ids": p.tolist()} for p in prompts]
            engine.generate(inputs, params)  # warm-up
            t = time.perf_counter()
            engine.generate(inputs, params)
            seconds = time.perf_counter() - t
            del engine
            release()
        return {"vllm": vllm.__version__, "tok_s": round(len(prompts) * new / seconds, 1)}
    except Exception as e:  # noqa: BLE001 - report what stopped it and go on
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def train_case(hf, ours, hc, rows: int, length: int, reps: int, peak: dict, kernel_names) -> dict:
    arrays = sft_batch(rows, length, hc.vocab_size, seed=1)
    batch = torch_batch("sft", arrays)
    batch = {"rows": {k: v.to(DEV) for k, v in batch["rows"].items()}}
    # one side at a time (PyTorch first, its memory released, then sqjax): the two training
    # states do not fit the GPU together, and JAX keeps what it frees; nothing else runs here
    torch_t = torch_steps(TorchTrainer(hf, "sft"), batch, reps)
    del batch
    release()
    torch_s, tokens = statistics.median(torch_t), rows * length
    matmul_params = sum(p.numel() for p in hf.parameters()) - hf.model.embed_tokens.weight.numel()
    if hc.tie_word_embeddings:
        matmul_params += hf.model.embed_tokens.weight.numel()  # the LM head still multiplies
    flops = tokens * (6 * matmul_params + 12 * hc.num_hidden_layers * hc.hidden_size * length)
    out = {
        "tokens_per_step": tokens,
        "torch_step_s": round(torch_s, 4),
        "flops_per_step": flops,
        "mfu_torch": round(flops / torch_s / (peak["peak_tflops"] * 1e12), 3),
        "lr": OPTIM.lr,
    }
    for name in kernel_names:
        model = ours.with_attention(name)
        ran = kernels.layer_kernels(model.config, length, True, jnp.bfloat16, DEV_PLATFORM).name
        sq = SqjaxTrainer(model, "sft", arrays, "none", 1024)
        first = gpu_time(sq.step, 1)[0]
        sq_s = statistics.median([gpu_time(sq.step, 1)[0] for _ in range(reps)])
        out[f"sqjax_{name}"] = {
            "kernel_ran": ran,
            "step_s": round(sq_s, 4),
            "ratio": round(torch_s / sq_s, 2),
            "first_call_s": round(first, 1),
            "mfu": round(flops / sq_s / (peak["peak_tflops"] * 1e12), 3),
        }
        del sq
        release()
    return out


def torch_steps(tt: TorchTrainer, batch: dict, reps: int) -> list[float]:
    tt.step(batch)  # warm-up
    return [gpu_time(lambda: tt.step(batch), 1)[0] for _ in range(reps)]


def parity(hf, ours, hc) -> dict:
    ids = np.random.default_rng(7).integers(3, hc.vocab_size, (2, 128))
    with torch.inference_mode():
        ref = hf(torch.tensor(ids, device=DEV)).logits.float().cpu().numpy()
    got = np.asarray(nnx.jit(lambda m, x: m(x))(ours, jnp.asarray(ids)), np.float32)
    return {
        "max_abs_diff": float(np.max(np.abs(ref - got))),
        "mean_abs_diff": float(np.mean(np.abs(ref - got))),
        "logit_std": float(np.std(ref)),
        "argmax_agree": float(np.mean(ref.argmax(-1) == got.argmax(-1))),
    }


def decode(rep: Report, args, peak: dict) -> None:
    hf, ours, hc = build(TINY if args.tiny else QWEN2_7B)
    rep.put("decode_model", {"parameters": sum(p.numel() for p in hf.parameters())})
    for B in (int(b) for b in args.batches.split(",")):
        if rep.left() < 60:
            rep.put(f"decode_b{B}", "skipped: out of budget")
            continue
        layouts = args.layouts.split(",")
        rep.put(f"decode_b{B}", decode_case(hf, ours, hc, B, args.repeats, peak, layouts))
    del hf, ours
    release()


def release() -> None:
    gc.collect()
    if DEV == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models: a smoke test, not figures")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds; later sections skip")
    ap.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu.json")
    ap.add_argument("--batches", default="1,256", help="decode batch sizes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layouts", default="layers,stacked", help="sqjax.LLM layer layouts")
    ap.add_argument("--train-cases", default="8x1024,2x4096", help="SFT rows x tokens")
    ap.add_argument("--kernels", default="auto,xla", help="sqjax attention kernels to train with")
    ap.add_argument(
        "--sections",
        default="decode,train",
        help="decode, train, parity (with train); run them in separate processes on one GPU, since JAX "
        "keeps the memory it freed",
    )
    args = ap.parse_args()
    rep = Report(args.out, args.budget, f"gpu_{args.sections.replace(',', '_')}.json")
    rep.put(
        "facts",
        {
            "command": " ".join(["python bench/gpu.py", *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "gpu": torch.cuda.get_device_name(0) if DEV == "cuda" else "none (cpu)",
            "jax": jax.__version__,
            "jax_devices": str(jax.devices()),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
    )
    peak = roofline(args.tiny)
    rep.put("roofline", peak)
    sections = args.sections.split(",")
    if "decode" in sections:
        decode(rep, args, peak)
    if "train" in sections and rep.left() > 90:
        hf, ours, hc = build(TINY if args.tiny else QWEN2_1_5B)
        rep.put("train_model", {"parameters": sum(p.numel() for p in hf.parameters())})
        if "parity" in sections:
            rep.put("parity_1_5b", parity(hf, ours, hc))
        for case in args.train_cases.split(","):
            rows, length = (int(x) for x in case.split("x"))
            length = min(length, 256) if args.tiny else length
            if rep.left() < 60:
                rep.put(f"sft_{rows}x{length}", "skipped: out of budget")
                continue
            rep.put(
                f"sft_{rows}x{length}",
                train_case(hf, ours, hc, rows, length, args.repeats, peak, args.kernels.split(",")),
            )
    elif "train" in sections:
        rep.put("train", "skipped: out of budget")
    print(json.dumps(rep.data))


if __name__ == "__main__":
    main()
