"""The method's first effect, measured: of the questions a model writes from the bare
pre-query prefix, what share does the judge call a math problem, and what share solvable?

Run by the qft stage (untuned model vs `qft:<m>`) and the qpo stage (`qft:<m>` vs
`qpo:<m>`) on a small sample. Sampling settings come from `qpo_sample`, the judge and its
token budget from `filter.solvability`; verdicts are read strictly (lax shares beside them).
Results go to the manifest metric `question_probe` as {model_ref: {...}}; the sampled
questions and judge replies stay in RUN/<stage>/steps/probe-*/ for inspection.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from sqjax.data.chat import chat_format, encoder
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.models import llm_for
from sqjax.question import solvability as sv
from sqjax.question.generation import sample_from
from sqjax.question.judging import ask_judge
from sqjax.question.math_cues import looks_like_math
from sqjax.question.prompt_library import load_prompt

# the settings a probe reads: config_deps of every stage that probes
PROBE_SETTINGS = ("qpo_sample", "filter.solvability")


def _judge(ctx: StageContext, messages: list[str], seed: int) -> list[str]:
    return [r["text"] for r in ask_judge(ctx, messages, seed)]


def _one_token(tokenizer: Any, word: str) -> int | None:
    ids = list(tokenizer.encode(word, add_special_tokens=False))
    return ids[0] if len(ids) == 1 else None


def _p_yes(ctx: StageContext, questions: list[str]) -> list[float | None]:
    """P("Yes") / (P("Yes") + P("No")) as the judge's first reply token to a direct question:
    a verdict even from a judge too small to follow the reason-then-answer format. None when
    "Yes" or "No" is not one token of the judge's tokenizer. One forward pass per prompt
    gives both probabilities."""
    from sqjax.sampling import scoring

    cfg = ctx.config.filter.solvability
    llm = llm_for(ctx, cfg.judge)
    yes, no = _one_token(llm.tokenizer, "Yes"), _one_token(llm.tokenizer, "No")
    if yes is None or no is None:
        ctx.log.info(
            "P(Yes) probe skipped: 'Yes' or 'No' is not one token of the judge's tokenizer"
        )
        return [None] * len(questions)
    fmt, encode = chat_format(llm.tokenizer, cfg.system), encoder(llm.tokenizer)
    prompts = [encode(fmt.chat_prompt(sv.judge_prompt(sv.IS_MATH_DIRECT, q))) for q in questions]
    batcher = scoring.Batcher(llm, cfg.batch_size)
    out = []
    for lp_V in batcher.run(scoring.next_token_logprobs, prompts):
        p_yes, p_no = np.exp(lp_V[[yes, no]].astype(np.float64))
        out.append(float(p_yes / (p_yes + p_no)) if p_yes + p_no > 0 else None)
    return out


def _probe_shard(
    ctx: StageContext, model_ref: str, rows: list[dict], info: ShardInfo
) -> list[dict]:
    samples = sample_from(ctx, model_ref, len(rows), ctx.config.qpo_sample, info.seed)
    info.add_tokens(sum(s["num_tokens"] for s in samples))
    questions = [s["question"] for s in samples]
    check = load_prompt(ctx.config.filter.solvability.prompt)
    # both questions to the judge in one call (greedy: a reply depends on its prompt only), so
    # its batch stays full and its last, emptying rounds are paid once
    asks = [sv.judge_prompt(sv.IS_MATH, q) for q in questions] + [check.fill(q) for q in questions]
    replies = _judge(ctx, asks, info.seed)
    is_math, solvable = replies[: len(questions)], replies[len(questions) :]
    p_math = _p_yes(ctx, questions)
    return [
        {
            **s,
            "model": model_ref,
            "is_math": sv.strict_verdict(m),
            "is_math_lax": sv.lax_verdict(m),
            "solvable": sv.strict_verdict(v),
            "solvable_lax": sv.lax_verdict(v),
            "p_math": p,
            "math_cues": looks_like_math(s["question"]),
            "judge_math": m,
            "judge_solvable": v,
        }
        for s, m, v, p in zip(samples, is_math, solvable, p_math)
    ]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _share(rows: list[dict], key: str) -> float:
    return sum(r[key] == "yes" for r in rows) / max(1, len(rows))


def _record(ctx: StageContext, model_ref: str, result: dict) -> None:
    metric = dict(ctx.manifest.get("metrics", {}).get("question_probe", {}))
    metric[model_ref] = result
    ctx.set_metric("question_probe", metric)


def reuse_probe(ctx: StageContext, stage: str, model_ref: str, n: int) -> bool:
    """Copies `model_ref`'s probe from a finished upstream stage's manifest when it judged
    at least `n` questions with the same judge; True if it did."""
    from sqjax.pipeline.manifest import read_manifest

    old = (read_manifest(ctx.run_dir / stage) or {}).get("metrics", {}).get("question_probe", {})
    found = old.get(model_ref)
    judge = ctx.config.filter.solvability.judge
    if found is None or found.get("n", 0) < n or found.get("judge") != judge:
        return False
    _record(ctx, model_ref, {**found, "from_stage": stage})
    return True


def probe(ctx: StageContext, model_ref: str, n: int) -> dict | None:
    """Samples `n` questions from `model_ref`, judges them, records and returns the shares
    (None, with a log line, when n is 0 or no judge is configured)."""
    judge = ctx.config.filter.solvability.judge
    if n <= 0 or not judge:
        ctx.log.info("question probe of %s skipped (n=%d, judge=%r)", model_ref, n, judge)
        return None
    step = "probe-" + re.sub(r"[^\w.-]", "_", model_ref)
    items = [{"probe": model_ref, "i": i} for i in range(n)]
    fn = lambda rows, info: _probe_shard(ctx, model_ref, rows, info)
    rows = ctx.map_shards(items, fn, n, step=step, desc=f"probe {model_ref}").rows()
    result = {
        "n": len(rows),
        "judge": judge,
        "math_share": _share(rows, "is_math"),
        "math_share_lax": _share(rows, "is_math_lax"),
        "solvable_share": _share(rows, "solvable"),
        "solvable_share_lax": _share(rows, "solvable_lax"),
        "math_cues_share": sum(r["math_cues"] for r in rows) / max(1, len(rows)),
        "p_math_mean": _mean([r["p_math"] for r in rows]),
        "p_math_share": _mean(
            [None if r["p_math"] is None else float(r["p_math"] > 0.5) for r in rows]
        ),
    }
    _record(ctx, model_ref, result)
    ctx.log.info("question probe %s: %s", model_ref, result)
    return result
