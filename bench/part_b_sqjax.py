"""sqjax's side of `bench/sampler.py` part b alone, on any checkout: an A/B of two commits on
one VM without running HF's ~20 minutes twice (the HF figure comes from one full part b run).

    PYTHONPATH=CHECKOUT .venv/bin/python bench/part_b_sqjax.py CHECKOUT

runs CHECKOUT's sqjax (its `bench/sampler.py` helpers and `sqjax.generate`) on the same 64
GSM8K prompts, SamplingParams, 32 slots and 16-question warm-up as part b, and prints one JSON
line: seconds, useful tokens, tokens/s and engine counters of the warm-up and measured call.
"""

import json
import sys
import time

tree = sys.argv[1]
sys.path[:0] = [tree, tree + "/bench"]
sys.argv = sys.argv[:1]
import sampler  # the checkout's own part b helpers

from sqjax.sampling.api import SamplingParams, generate

root, name, gsm = sampler.smollm_paths()
tok, hf, ours, _ = sampler.load_smollm(root, name)
del hf
with open(gsm) as f:
    questions = [json.loads(line)["question"] for line in f][:64]
prompts = [
    tok.apply_chat_template(
        [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
    )
    for q in questions
]
eot = tok.convert_tokens_to_ids("<|im_end|>")
sp = SamplingParams(n=4, max_tokens=512, stop_token_ids=[eot], seed=0, **sampler.SAMPLING)
out = {"tree": tree}
for label, batch in (("warmup", prompts[:16]), ("measured", prompts)):
    stats: dict = {}
    t = time.perf_counter()
    res = generate(ours, tok, batch, sp, max_batch=32, progress=False, engine_stats=stats)
    t = time.perf_counter() - t
    useful = sum(len(o.token_ids) for c in res for o in c.outputs)
    out[label] = {
        "s": round(t, 1),
        "tokens": useful,
        "tok_s": round(useful / t, 1),
        "stats": {k: round(v, 2) if isinstance(v, float) else v for k, v in stats.items()},
    }
print(json.dumps(out))
