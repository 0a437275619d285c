"""Writes real model outputs to label for tests/data/grading_cases.jsonl (rows with "model").

The eval stage's prompt and decoding (zero-shot, the paper's boxed instruction, greedy) on the
first 24 GSM8K and 24 MATH test problems, SmolLM2-135M-Instruct Q4_1 GGUF, max_tokens 320:

    JAX_PLATFORMS=cpu python tests/data/make_model_outputs.py outputs.jsonl

Each output line holds the question, gold, output and the grader's verdict at the time; the
table's rows were then labelled by hand (the "answer" a reader extracts, and whether it equals
the gold), not copied from the grader.
"""

import json
import sys

from sqjax import assets
from sqjax.answer.benchmark_specs import load_benchmark
from sqjax.answer.evaluation import evaluate_checkpoint

rows = load_benchmark("gsm8k", assets.GSM8K_TEST, limit=24)
rows += load_benchmark("math", assets.MATH_TEST, limit=24)
path = str(assets.resolve(assets.SMOLLM2_GGUF))
graded = evaluate_checkpoint(path, rows, max_tokens=320, batch_size=48, dtype="float32")
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.writelines(json.dumps(g, ensure_ascii=False) + "\n" for g in graded)
