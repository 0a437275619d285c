"""Stage reward: score every (question, response), keep the best response per question.

Scores come from a reward model (the paper's internlm2-7b-reward, or any HF score-head model)
or, with `mode: judge`, from an LM's P("Yes") to a correctness question (sqjax.answer.pair_scores).
The argmax per question is kept, ties to the earliest response (sqjax.answer.selection). As an
extra quality signal the paper lacks, each kept row also records the majority vote over the
question's final answers: `scores.agreement` (share of responses in the majority cluster) and
`verdicts.majority` ("yes" when the selected answer is in it). `shard_size` counts questions.

Output: the selected rows; the final data set (`query`, `response`, provenance columns) is
also written to RUN/reward/dataset.jsonl, loadable with
`datasets.load_dataset("json", data_files=...)`. Its clean ratio against each evaluation set
(the paper's Table 6; settings `clean_ratio`) is measured on that file (metric `clean_ratio`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqjax.answer.pair_scores import pair_scores
from sqjax.answer.selection import best_index, majority_vote
from sqjax.data.jsonl import read_jsonl
from sqjax.paths import AnyPath, as_path
from sqjax.pipeline.checks import positive, require
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.models import llm_for
from sqjax.pipeline.records import export_dataset, with_score, with_verdict
from sqjax.pipeline.stage import Stage
from sqjax.question.filters import clean_ratios
from sqjax.stages.gen_questions import generated

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job

DATASET_FIELDS = ("query", "response")


@dataclass(frozen=True)
class CleanRatioMeasure:
    """The paper's Table 6 on the final data set (RUN/reward/dataset.jsonl): per evaluation
    set of eval.benchmarks, the share of rows whose `fields` share no word n-gram with any of
    its questions. A measurement only: it never drops a row (filter.decontam does that).
    The paper checked 13-gram overlap with the test sets' questions; `fields` defaults to the
    rows' questions (`query`), add `response` to check the answers too."""

    enabled: bool = True
    ngram: int = 13
    fields: list[str] = field(default_factory=lambda: ["query"])

    def __post_init__(self) -> None:
        positive(ngram=self.ngram)
        bad = [f for f in self.fields if f not in DATASET_FIELDS]
        require(bool(self.fields) and not bad, f"fields={self.fields}: pick from {DATASET_FIELDS}")


@dataclass(frozen=True)
class RewardConfig:
    """Stage reward: score every (question, response) and keep the best per question; then
    measure the final data set's clean ratio against each evaluation set (Table 6)."""

    model: str = field(default="", metadata=MODEL)
    mode: Literal["reward_model", "judge"] = "reward_model"
    max_len: int = 4096
    judge_max_tokens: int = 1024  # mode=judge only
    batch_size: int = 64
    shard_size: int = 2_000
    clean_ratio: CleanRatioMeasure = field(default_factory=CleanRatioMeasure)

    def __post_init__(self) -> None:
        positive(max_len=self.max_len, batch_size=self.batch_size)
        positive(shard_size=self.shard_size, judge_max_tokens=self.judge_max_tokens)


DATASET_FILE = "dataset.jsonl"


def dataset_path(run_dir: str | Path) -> AnyPath:
    """Where the final (query, response) data set of a run is written."""
    return as_path(run_dir) / "reward" / DATASET_FILE


def group_by_question(rows: list[dict]) -> list[dict]:
    """[{question_id, responses: [rows]}] in order of first appearance."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["question_id"], []).append(row)
    return [{"question_id": q, "responses": rs} for q, rs in groups.items()]


def select(responses: list[dict], scores: list[float]) -> dict:
    """The best-scored response with its reward, agreement and majority verdict."""
    vote = majority_vote([r.get("answer") for r in responses])
    best = best_index(scores)
    row = with_score(responses[best], "reward", scores[best])
    row = with_score(row, "agreement", vote.agreement)
    row = with_verdict(row, "majority", "yes" if vote.in_majority(best) else "no")
    return {**row, "num_candidates": len(responses), "majority_answer": vote.answer}


def select_shard(ctx: StageContext, groups: list[dict], info: ShardInfo) -> list[dict]:
    """Scores every response of the shard's questions and keeps one per question."""
    s = ctx.section
    flat = [r for g in groups for r in g["responses"]]
    scores = pair_scores(
        s.mode,
        llm_for(ctx, s.model),
        [r["question"] for r in flat],
        [r["response"] for r in flat],
        max_len=s.max_len,
        judge_max_tokens=s.judge_max_tokens,
        batch_size=s.batch_size,
    )
    out, start = [], 0
    for g in groups:
        n = len(g["responses"])
        part = scores[start : start + n]
        start += n
        too_long = sum(1 for x in part if math.isnan(x))
        if too_long:
            info.drop("over_max_len", too_long)
        if too_long == n:
            info.drop("question_without_scored_response")
            continue
        out.append(select(g["responses"], part))
    return out


def measure_clean_ratio(ctx: StageContext, path: AnyPath) -> None:
    """The paper's Table 6 on the written data set: clean ratio per evaluation set."""
    m = ctx.section.clean_ratio
    if not m.enabled:
        ctx.log.info("clean ratio of %s not measured (reward.clean_ratio.enabled: false)", path)
        return
    rows = list(read_jsonl(path, required=m.fields))
    per = clean_ratios(rows, ctx.config.eval.benchmarks, m.ngram, m.fields)
    decontam = ctx.config.filter.decontam.enabled
    metric = {"data": str(path), "rows": len(rows), "ngram": m.ngram, "fields": list(m.fields)}
    ctx.set_metric("clean_ratio", {**metric, "filtered": decontam, "benchmarks": per})
    ctx.log.info("clean ratio: %s", {k: round(v["clean_ratio"], 4) for k, v in per.items()})


def run(ctx: StageContext) -> None:
    groups = group_by_question(ctx.read_stage("gen-responses"))
    ctx.log.info(
        "%d questions to score with %s (%s)", len(groups), ctx.section.model, ctx.section.mode
    )
    out = ctx.map_shards(
        groups, lambda g, info: select_shard(ctx, g, info), ctx.section.shard_size, desc="reward"
    )
    path = dataset_path(ctx.run_dir)
    n = export_dataset(out, path)
    ctx.log.info("wrote %d (query, response) rows to %s", n, path)
    ctx.set_metric("dataset", {"path": str(path), "rows": n})
    measure_clean_ratio(ctx, path)
    ctx.declare_row_stats("scores.reward", "scores.agreement")


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    """One scoring pass per (question, response): compiled at max_len (memory), calls
    scaled to the mean length (time); judge mode scores P(yes) with an LM."""
    from sqjax.plan import workload as W
    from sqjax.sampling.engine import pow2, round_up

    s = run.reward
    pairs = generated(run) * W.KEPT_AFTER_FILTER * run.gen_responses.n
    rows = round_up(pow2(s.batch_size), rows_multiple)
    mean_len = W.ANSWER_PROMPT_TOKENS + W.RESPONSE_TOKENS
    kind = "reward" if s.mode == "reward_model" else "next"
    calls = pairs / rows * mean_len / s.max_len
    return [W.Job(stage, s.model, "score", (rows, s.max_len, kind), calls)]


STAGE = Stage(
    "reward",
    "score responses with a reward model and keep the best per question",
    run,
    config=RewardConfig,
    inputs=("gen-responses",),
    config_deps=("eval.benchmarks", "filter.decontam.enabled"),
    workload=workload,
)
