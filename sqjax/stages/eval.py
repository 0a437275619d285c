"""Stage eval: zero-shot chain of thought, greedy, on each benchmark, for each model.

Models are `models` table names or training outputs (`sft:<m>`), so the same stage scores a
base model before and after SFT. An `sft:<m>` model is prompted as it was trained
(sft.template, sft.instruction: DART-Math's alpaca template by default); any other model with
eval.template / eval.instruction (its own chat template and the \boxed{} instruction).
Benchmarks are `name: spec` (sqjax.answer.benchmark_specs: JSONL path, `hf:` or `tfds:`); `limit` keeps the first problems of each. The output rows are the
inspection table (question, gold, output, extracted answer, verdict, grading method); the
metrics hold `scores: {model: {bench: accuracy}}` for the report and `accuracy` with the
per-subject and per-level breakdown (MATH `type` and `level`), also written to
RUN/eval/artifacts/accuracy.json. Shards hold 4 x batch_size (model, problem) pairs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any

from sqjax import assets
from sqjax.answer.benchmark_specs import load_benchmark
from sqjax.answer.evaluation import evaluate_rows, greedy_generator, summarize
from sqjax.data.jsonl import atomic_write_json
from sqjax.data.prompt_format import (
    BOXED_INSTRUCTION,
    MODEL_TEMPLATE,
    check_template,
    with_template,
)
from sqjax.pipeline.checks import positive
from sqjax.pipeline.config import DIR_NAMES, MODEL
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.models import forget, llm_for
from sqjax.pipeline.stage import Stage

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


def _paper_benchmarks() -> dict[str, str]:
    return {"gsm8k": assets.GSM8K_TEST, "math": assets.MATH_TEST}


@dataclass(frozen=True)
class EvalConfig:
    """Stage eval: zero-shot CoT, greedy; answer from the last \\boxed{}."""

    models: list[str] = field(default_factory=list, metadata=MODEL)
    benchmarks: dict[str, str] = field(default_factory=_paper_benchmarks, metadata=DIR_NAMES)
    # prompt of models the sft stage did not train (`sft:<m>` use sft.template/instruction):
    # the tokenizer's own chat template and the step-by-step / \boxed{} instruction
    template: str = MODEL_TEMPLATE
    instruction: str = BOXED_INSTRUCTION
    max_tokens: int = 2048
    limit: int | None = None  # first `limit` problems per benchmark (smoke runs)
    batch_size: int = 64

    def __post_init__(self) -> None:
        positive(max_tokens=self.max_tokens, limit=self.limit, batch_size=self.batch_size)
        check_template(self.template, "template")


SHARD_BATCHES = 4


def work_items(ctx: StageContext) -> list[dict]:
    """One item per (model, benchmark problem), models outermost."""
    s = ctx.section
    problems = [
        {**row, "benchmark": name}
        for name, spec in s.benchmarks.items()
        for row in load_benchmark(name, spec, s.limit)
    ]
    return [{"model": m, **p} for m in s.models for p in problems]


def prompt_of(ctx: StageContext, name: str) -> tuple[str, str]:
    """(chat template, instruction) for a model: the sft stage's for `sft:<m>`, so training
    and evaluation see the same prompt; eval's own for every other model."""
    cfg = ctx.config.sft if name.startswith("sft:") else ctx.section
    return cfg.template, cfg.instruction


def eval_shard(
    ctx: StageContext, rows: list[dict], info: ShardInfo, loaded: list[str]
) -> list[dict]:
    """Greedy answers and verdicts for one shard, one generation call per model in it."""
    s, out = ctx.section, []
    for name, group in groupby(rows, key=lambda r: r["model"]):
        if loaded and loaded[-1] != name:
            forget()  # one evaluated model in memory at a time
            loaded.clear()
        if not loaded:
            loaded.append(name)
        template, instruction = prompt_of(ctx, name)
        llm = llm_for(ctx, name)
        llm = llm.with_tokenizer(with_template(llm.tokenizer, template))
        gen = greedy_generator(llm, max_tokens=s.max_tokens, batch_size=s.batch_size)
        graded = evaluate_rows(list(group), gen, llm.tokenizer, instruction)
        info.add_tokens(sum(r["num_tokens"] for r in graded))
        out.extend(graded)
    return out


def scores_by_model(rows: list[dict]) -> dict[str, dict]:
    """{model: summarize(rows of that model)}, models in order of appearance."""
    per: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        per[r["model"]].append(r)
    return {m: summarize(rs) for m, rs in per.items()}


def run(ctx: StageContext) -> None:
    items = work_items(ctx)
    loaded: list[str] = []
    size = SHARD_BATCHES * ctx.section.batch_size
    out = ctx.map_shards(items, lambda r, info: eval_shard(ctx, r, info, loaded), size, desc="eval")
    accuracy = scores_by_model(out.rows())
    scores = {m: {b: v["accuracy"] for b, v in per.items()} for m, per in accuracy.items()}
    atomic_write_json(ctx.artifacts_dir / "accuracy.json", accuracy)
    ctx.set_metric("accuracy", accuracy)
    ctx.set_metric("scores", scores)
    for model, per in scores.items():
        ctx.log.info("%s: %s", model, ", ".join(f"{b} {100 * a:.1f}%" for b, a in per.items()))
    ctx.declare_row_stats("num_tokens")


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    """Greedy answers to the benchmarks' problems, per evaluated model."""
    from sqjax.plan import workload as W

    s = run.eval
    return [
        job
        for ref in s.models
        for job in W.answer_jobs(
            run, stage, ref, s.batch_size, rows_multiple, s.max_tokens, W.EVAL_PROBLEMS
        )
    ]


STAGE = Stage(
    "eval",
    "evaluate models on math benchmarks (zero-shot CoT, greedy)",
    run,
    config=EvalConfig,
    config_deps=("sft.template", "sft.instruction"),
    workload=workload,
)
