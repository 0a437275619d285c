"""Trainer benchmark: sqjax SFT and DPO train steps against a plain PyTorch training loop.

The same model (the ~55M Qwen2 of bench/sampler.py part a: transformers' Qwen2ForCausalLM,
SDPA attention, and the sqjax Decoder loaded from its tensors), float32 on both sides, AdamW
with the same hyper-parameters and global-norm clipping, the same batch:
  sft_8x256, sft_4x1024: packed rows of random examples, every token a target;
  dpo_4x256: 4 (chosen, rejected) pairs, one right-padded 256-token row each, completion
  tokens in the loss, reference log-probs computed once before (sqjax.training.dpo), the
  sigmoid loss (beta 0.1) on both sides.
PyTorch: forward, loss, backward, clip, AdamW step, `torch.set_num_threads(2)`; the packed
rows' block-diagonal causal mask is a 4-D boolean mask built outside the timed step. sqjax:
`sqjax.training.step.make_train_step` (state donated, one device).

Steps are interleaved (PyTorch, sqjax, PyTorch, ...) and medians taken, of wall time and of
process CPU time (which other processes on a shared machine disturb less); sqjax's first call
(compile, or a load from the persistent XLA cache unless --cold) is timed apart. Both sides
train on the same batch from the same weights, so their losses must agree step by step
(`max_loss_diff`): a check that they do the same work. MFU is 6 x matmul parameters (all
but the input embedding; the LM head counts) x tokens / step time / peak, the peak being the
best of a large float32 `jnp.dot` and `torch.mm` measured before and after the cases;
`mfu_attn` adds the attention-score FLOPs (12 x layers x D x L per token, as PaLM counts
them). The profile is a `jax.profiler` trace of sqjax steps whose XLA op events are joined to
the compiled HLO's metadata (bench/trace_summary.py). The last line printed is one JSON object.

    python bench/train.py [--quick] [--repeats 5] [--cases sft_8x256,sft_4x1024,dpo_4x256]
                          [--tiny] [--profile-steps 2] [--cold]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from common import QWEN2_55M, end_facts, log, run_facts
from flax import nnx
from trace_summary import summarize_trace

from sqjax import compile_cache
from sqjax.checkpoints.convert import load_from_tensors
from sqjax.data.packing import Example, pack_examples
from sqjax.models.hf_config import from_hf_config
from sqjax.sharding import make_mesh
from sqjax.training.config import LOGITS_CHUNK, REMAT_MODES, DPOConfig, OptimConfig
from sqjax.training.dpo import dpo_objective, reference_logprobs
from sqjax.training.inputs import dpo_collate, local_rows, row_arrays
from sqjax.training.optimizer import make_optimizer, schedule
from sqjax.training.sft import sft_objective
from sqjax.training.step import batch_spec, init_state, make_train_step, state_sharding

OPTIM = OptimConfig(lr=2e-5, end_lr=2e-5, warmup_steps=0)  # constant lr, as PyTorch's
DPO = DPOConfig()  # sigmoid, beta 0.1
TINY = {  # --tiny: the smoke test's model
    "vocab_size": 512,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 1024,
}
CASES = ("sft_8x256", "sft_4x1024", "dpo_4x256")


def parse_case(name: str) -> tuple[str, int, int]:
    """'sft_8x256' -> ('sft', 8, 256): rows (SFT) or pairs (DPO) by tokens per row."""
    try:
        loss, shape = name.split("_")
        rows, length = (int(x) for x in shape.split("x"))
    except ValueError:
        raise SystemExit(f"--cases: {name!r} is not like sft_8x256 or dpo_4x256") from None
    if loss not in ("sft", "dpo"):
        raise SystemExit(f"--cases: {name!r} starts with {loss!r}; use sft or dpo")
    return loss, rows, length


# ---------------------------------------------------------------------------------- batches


def sft_batch(rows: int, length: int, vocab: int, seed: int) -> dict[str, np.ndarray]:
    """`rows` packed rows of random examples (lengths length/16 .. length), all targets."""
    rng = np.random.default_rng(seed)
    examples = []
    while sum(len(e.tokens_L) for e in examples) < 1.2 * rows * length:
        n = int(rng.integers(max(2, length // 16), length + 1))
        examples.append(Example(rng.integers(3, vocab, n).astype(np.int32), np.ones(n, np.int32)))
    packed, _ = pack_examples(examples, length)
    assert packed.tokens_BL.shape[0] >= rows, "1.2 rows' worth of examples packed into fewer rows"
    return {k: v[:rows] for k, v in row_arrays(packed, 0).items()}


def dpo_batch(pairs: int, length: int, vocab: int, seed: int) -> dict[str, np.ndarray]:
    """`pairs` (chosen, rejected) rows: a shared prompt of length/8 .. length/4 tokens and two
    completions of length/4 .. the rest, only the completions in the loss."""
    rng = np.random.default_rng(seed)

    def example(prompt):
        n = int(rng.integers(length // 4, length - len(prompt) + 1))
        tokens = np.concatenate([prompt, rng.integers(3, vocab, n)]).astype(np.int32)
        mask = np.concatenate([np.zeros(len(prompt)), np.ones(n)]).astype(np.int32)
        return Example(tokens, mask)

    items = []
    for _ in range(pairs):
        prompt = rng.integers(3, vocab, int(rng.integers(length // 8, length // 4 + 1)))
        items.append((example(prompt), example(prompt), 0.0, 0.0))
    return dpo_collate(items, length, 0)


# ---------------------------------------------------------------------------------- PyTorch


def torch_rows(arrays: dict[str, np.ndarray], prefix: str = "") -> dict[str, torch.Tensor]:
    """One set of rows as tensors, with the block-diagonal causal mask [B, 1, L, L] (True:
    attend) that keeps packed examples apart, as sqjax's segment ids do."""
    seg = torch.from_numpy(arrays[f"{prefix}segment_ids"].astype(np.int64))
    L = seg.shape[1]
    causal_LL = torch.ones(L, L, dtype=torch.bool).tril()
    return {
        "tokens": torch.from_numpy(arrays[f"{prefix}tokens"].astype(np.int64)),
        "positions": torch.from_numpy(arrays[f"{prefix}positions"].astype(np.int64)),
        "targets": torch.from_numpy(arrays[f"{prefix}targets"].astype(np.int64)),
        "weights": torch.from_numpy(arrays[f"{prefix}weights"].astype(np.float32)),
        "mask": ((seg[:, :, None] == seg[:, None, :]) & causal_LL)[:, None],
    }


def torch_logprobs(model, rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, L] log p(targets), float32."""
    out = model(
        input_ids=rows["tokens"], attention_mask=rows["mask"], position_ids=rows["positions"]
    )
    logits_BLV = out.logits.float()
    nll = F.cross_entropy(logits_BLV.flatten(0, 1), rows["targets"].flatten(), reduction="none")
    return -nll.view_as(rows["weights"])


def torch_sft_loss(model, batch: dict) -> torch.Tensor:
    w = batch["rows"]["weights"]
    return -(torch_logprobs(model, batch["rows"]) * w).sum() / w.sum().clamp(min=1.0)


def torch_dpo_loss(model, batch: dict) -> torch.Tensor:
    """The sigmoid DPO loss, chosen and rejected rows in one forward as sqjax runs them."""
    c, r = batch["chosen"], batch["rejected"]
    rows = {k: torch.cat([c[k], r[k]]) for k in c}
    seq_2B = (torch_logprobs(model, rows) * rows["weights"]).sum(-1)
    B = c["tokens"].shape[0]
    h_B = (seq_2B[:B] - batch["ref_chosen"]) - (seq_2B[B:] - batch["ref_rejected"])
    return -F.logsigmoid(DPO.beta * h_B).mean()


def torch_batch(loss: str, arrays: dict[str, np.ndarray]) -> dict:
    if loss == "sft":
        return {"rows": torch_rows(arrays)}
    return {
        "chosen": torch_rows(arrays, "chosen_"),
        "rejected": torch_rows(arrays, "rejected_"),
        "ref_chosen": torch.tensor(arrays["ref_chosen"]),
        "ref_rejected": torch.tensor(arrays["ref_rejected"]),
    }


class TorchTrainer:
    """A plain loop: zero grads, forward + loss, backward, clip, AdamW."""

    def __init__(self, hf0, loss: str):
        self.model = copy.deepcopy(hf0).train()
        self.loss_fn = torch_sft_loss if loss == "sft" else torch_dpo_loss
        self.opt = torch.optim.AdamW(
            self.model.parameters(),
            lr=OPTIM.lr,
            betas=(OPTIM.b1, OPTIM.b2),
            eps=OPTIM.eps,
            weight_decay=OPTIM.weight_decay,
        )

    def step(self, batch: dict) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), OPTIM.clip_norm)
        self.opt.step()
        return loss.item()


# ---------------------------------------------------------------------------------- sqjax


class SqjaxTrainer:
    """sqjax's jitted train step on one device, state donated from step to step."""

    def __init__(self, model, loss: str, arrays: dict[str, np.ndarray], remat: str, chunk: int):
        mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
        graphdef, params = nnx.split(model, nnx.Param)
        optimizer = make_optimizer(OPTIM, 1000)
        sharding = state_sharding(params, optimizer, mesh)
        self.state = init_state(params, optimizer, sharding)
        local = local_rows(arrays, 1, 0, 1)  # [accum_steps=1, rows, ...]
        self.batch = {k: jax.device_put(v, batch_spec(mesh, v.ndim)) for k, v in local.items()}
        if loss == "sft":
            objective = sft_objective(remat, chunk)
        else:
            objective = dpo_objective(DPO.variant, DPO.beta, remat=remat, logits_chunk=chunk)
        shapes = {k: v.shape for k, v in local.items()}
        self.fn = make_train_step(
            graphdef, objective, optimizer, schedule(OPTIM, 1000), sharding, shapes, mesh
        )

    def step(self) -> float:
        self.state, metrics = self.fn(self.state, self.batch)
        return float(metrics["loss"])  # waits for the step, as PyTorch's loss.item() does

    def profile(self, steps: int) -> dict:
        """A jax.profiler trace of `steps` steps, summarised by phase and component."""
        hlo = self.fn.lower(self.state, self.batch).compile().as_text()
        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 0  # XLA's op events only: Python's would slow the step
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            with jax.profiler.trace(d, create_perfetto_trace=True, profiler_options=options):
                for _ in range(steps):
                    self.step()
            wall = (time.perf_counter() - t) / steps
            module = hlo.split(None, 2)[1].rstrip(",")  # "HloModule jit_<name>, ..."
            return summarize_trace(d, hlo, module, steps) | {"step_wall_ms": wall * 1e3}


# ---------------------------------------------------------------------------------- figures


def matmul_peak(n: int, reps: int) -> dict:
    """Best float32 GFLOP/s of an n x n x n matmul by JAX (XLA CPU) and by PyTorch, per second
    of wall time and per second of process CPU time (the second for CPU-time MFU)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), np.float32) for _ in range(2))
    dot = jax.jit(jnp.dot)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    runs = {"jax": lambda: dot(ja, jb).block_until_ready(), "torch": lambda: torch.mm(ta, tb)}
    out: dict = {"n": n}
    for name, fn in runs.items():
        fn()
        wall, cpu, _ = zip(*(clocked(fn) for _ in range(reps)))
        out[f"{name}_gflops"] = round(2 * n**3 / min(wall) / 1e9, 1)
        out[f"{name}_gflops_per_cpu_s"] = round(2 * n**3 / min(cpu) / 1e9, 1)
    out["peak_gflops"] = max(out["jax_gflops"], out["torch_gflops"])
    out["peak_gflops_per_cpu_s"] = max(out["jax_gflops_per_cpu_s"], out["torch_gflops_per_cpu_s"])
    return out


def flops_per_token(hc, matmul_params: int, length: int) -> tuple[float, float]:
    """(6N, 6N + 12 x layers x D x L): training FLOPs per token without and with attention."""
    attn = 12 * hc.num_hidden_layers * hc.hidden_size * length
    return 6.0 * matmul_params, 6.0 * matmul_params + attn


def case_batch(loss: str, rows: int, length: int, vocab: int, ours) -> dict[str, np.ndarray]:
    if loss == "sft":
        return sft_batch(rows, length, vocab, seed=1)
    arrays = dpo_batch(rows, length, vocab, seed=2)
    return arrays | reference_logprobs(ours, [arrays])[0]  # the precomputed reference, once


def clocked(fn) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, fn's value): CPU time counts this process's threads
    only, so it moves less than wall time when other processes load the machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def interleave(torch_step, sq_step, repeats: int) -> dict[str, list[float]]:
    """Alternating timed steps; the first of each side (PyTorch's warm-up, sqjax's compile)
    is timed apart and its loss kept, so the two loss curves line up step by step."""
    runs = {
        k: [] for k in ("torch_wall", "torch_cpu", "torch_loss", "sq_wall", "sq_cpu", "sq_loss")
    }
    runs["torch_loss"].append(torch_step())
    first, _, loss = clocked(sq_step)
    runs["sq_loss"].append(loss)
    runs["sq_first"] = [first]
    for _ in range(repeats):
        for side, step in (("torch", torch_step), ("sq", sq_step)):
            wall, cpu, loss = clocked(step)
            runs[f"{side}_wall"].append(wall)
            runs[f"{side}_cpu"].append(cpu)
            runs[f"{side}_loss"].append(loss)
    return runs


def run_case(name: str, hf0, ours, args) -> tuple[dict, SqjaxTrainer]:
    """One case's figures (MFU is added once the peak is known) and its sqjax trainer."""
    loss, rows, length = parse_case(name)
    arrays = case_batch(loss, rows, length, hf0.config.vocab_size, ours)
    tt, tb = TorchTrainer(hf0, loss), torch_batch(loss, arrays)
    sq = SqjaxTrainer(ours, loss, arrays, args.remat, args.logits_chunk)
    runs = interleave(lambda: tt.step(tb), sq.step, args.repeats)
    med = {k: statistics.median(v) for k, v in runs.items() if k.endswith(("wall", "cpu"))}
    tokens = sum(v.size for k, v in arrays.items() if k.endswith("segment_ids"))
    out = {
        "tokens_per_step": tokens,
        "torch_step_s": round(med["torch_wall"], 3),
        "sqjax_step_s": round(med["sq_wall"], 3),
        "torch_tok_s": round(tokens / med["torch_wall"], 1),
        "sqjax_tok_s": round(tokens / med["sq_wall"], 1),
        "ratio": round(med["torch_wall"] / med["sq_wall"], 2),
        "ratios": [round(a / b, 2) for a, b in zip(runs["torch_wall"], runs["sq_wall"])],
        "torch_cpu_s": round(med["torch_cpu"], 3),
        "sqjax_cpu_s": round(med["sq_cpu"], 3),
        "cpu_ratio": round(med["torch_cpu"] / med["sq_cpu"], 2),
        "sqjax_first_call_s": round(runs["sq_first"][0], 2),
        "compile_s_est": round(runs["sq_first"][0] - med["sq_wall"], 2),
        "max_loss_diff": float(np.max(np.abs(np.subtract(runs["torch_loss"], runs["sq_loss"])))),
        "losses_first_last": [round(runs["sq_loss"][0], 5), round(runs["sq_loss"][-1], 5)],
    }
    log(f"[{name}] {out}")
    return out, sq


def add_mfu(figures: dict, hc, matmul_params: int, length: int, peak: dict) -> None:
    """MFU of both sides (6N FLOPs per token; with attention for sqjax) against the wall-time
    peak, and `cpu_mfu`: FLOPs per CPU-second against the peak's FLOPs per CPU-second."""
    f6n, fattn = flops_per_token(hc, matmul_params, length)
    tokens = figures["tokens_per_step"]
    for side in ("sqjax", "torch"):
        wall, cpu = figures[f"{side}_step_s"], figures[f"{side}_cpu_s"]
        figures[f"mfu_{side}"] = round(f6n * tokens / wall / (peak["peak_gflops"] * 1e9), 3)
        cpu_peak = peak["peak_gflops_per_cpu_s"] * 1e9
        figures[f"cpu_mfu_{side}"] = round(f6n * tokens / cpu / cpu_peak, 3)
    figures["mfu_attn_sqjax"] = round(
        fattn * tokens / figures["sqjax_step_s"] / (peak["peak_gflops"] * 1e9), 3
    )


def build_models(tiny: bool):
    """The PyTorch model (random init, seed 0) and the sqjax Decoder from its tensors."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    hc = Qwen2Config(**(TINY if tiny else QWEN2_55M), attn_implementation="sdpa")
    hf0 = Qwen2ForCausalLM(hc)
    sd = {k: v.detach().numpy() for k, v in hf0.state_dict().items()}
    ours = load_from_tensors(from_hf_config(hf0.config.to_dict()), sd.keys(), sd.__getitem__)
    return hf0, ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats, short cases: not figures")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, e.g. sft_8x256")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model (the smoke test)")
    ap.add_argument("--profile-steps", type=int, default=2, help="0: no profile")
    ap.add_argument("--cold", action="store_true", help="no persistent XLA cache")
    ap.add_argument("--remat", default="none", choices=REMAT_MODES, help="sqjax's remat policy")
    ap.add_argument("--logits-chunk", type=int, default=LOGITS_CHUNK, help="sqjax's LM-head chunk")
    args = ap.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 2)
    cache_dir = None if args.cold else compile_cache.enable()
    torch.set_num_threads(2)
    out = run_facts() | {
        "command": " ".join(["python bench/train.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": args.quick,
        "repeats": args.repeats,
        "compile_cache": cache_dir,
        "torch_threads": torch.get_num_threads(),
        "sqjax_remat": args.remat,
        "sqjax_logits_chunk": args.logits_chunk,
        "jax_devices": str(jax.devices()),
    }
    n, reps = (512 if args.tiny else 2048), (3 if args.quick else 5)
    peaks = [matmul_peak(n, reps)]
    log(f"matmul peak {peaks[0]}")
    hf0, ours = build_models(args.tiny)
    params = sum(p.numel() for p in hf0.parameters())
    matmul_params = params - hf0.model.embed_tokens.weight.numel()
    out |= {"model_parameters": params, "matmul_parameters": matmul_params}
    out["mfu_basis"] = "6 x matmul_parameters (all but the input embedding) x tokens"
    profiles = {}
    cases = args.cases.split(",")
    for name in cases:
        out[name], sq = run_case(name, hf0, ours, args)
        if args.profile_steps > 0:
            profiles[name] = sq.profile(args.profile_steps)
            log(f"[{name}] profile {profiles[name]}")
        del sq
    peaks.append(matmul_peak(n, reps))  # the best of two: the machine is shared
    out["peak"] = {"start": peaks[0], "end": peaks[1]}
    best = {k: max(p[k] for p in peaks) for k in ("peak_gflops", "peak_gflops_per_cpu_s")}
    out |= best
    for name in cases:
        add_mfu(out[name], hf0.config, matmul_params, parse_case(name)[2], best)
    out["profile"] = profiles
    first = args.cases.split(",")[0]
    out["ratio_vs_torch"] = out[first]["ratio"]
    out["ratio_vs_torch_case"] = first
    out |= end_facts()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
