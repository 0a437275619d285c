"""Stage filter: language -> solvability -> difficulty -> dedup -> decontamination.

- language (per row): non-empty and pure ASCII (the paper's rule); optionally a language-ID
  check of the prose (language_id: true).
- solvability (per row): the judge reasons step by step and ends with Yes/No; both the strict
  final verdict and the authors' lax "yes anywhere" are recorded, `verdict` picks the one
  that decides.
- difficulty (per generator, after the two above): the easiest `drop_share` by predicted fail
  rate (the `difficulty` stage's regressor) are dropped; `apply_to` limits it to generators.
- dedup: exact then near duplicates (sqjax.data.dedup); decontam: 13-gram overlap with the
  evaluation sets of `eval.benchmarks` (sqjax.data.decontam). Both are off in the paper's
  settings; the clean ratio of the output against each evaluation set (the paper's Table 6)
  is measured either way (metric `clean_ratio`).
Kept rows carry their verdicts and scores; every dropped row goes, with `dropped_by` and
`drop_reason`, to RUN/filter/steps/dropped/. Metrics: removed per filter, strict/lax
disagreements, and every decontamination match.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqjax.pipeline.checks import positive, require
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.models import llm_for
from sqjax.pipeline.records import with_score, with_verdict
from sqjax.pipeline.stage import Stage
from sqjax.question import filters as F
from sqjax.question import solvability as sv
from sqjax.question.judging import ask_judge
from sqjax.question.language import LanguageFilter, language_reason
from sqjax.question.prompt_library import PAPER_PROMPTS, PAPER_SYSTEM, check_prompt, load_prompt
from sqjax.stages.gen_questions import generated

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


@dataclass(frozen=True)
class SolvabilityFilter:
    """A judge reasons step by step and ends with Yes/No (paper: removed 19.4%)."""

    enabled: bool = True
    judge: str = field(default="", metadata=MODEL)
    prompt: str = PAPER_PROMPTS["solvability-check"]  # Figure 12; or sqjax-solvability-check
    system: str | None = PAPER_SYSTEM  # the authors' system turn; None = the template's own
    max_tokens: int = 2048  # greedy
    verdict: Literal["strict", "lax"] = "strict"  # lax = "yes" anywhere (the authors' code)
    batch_size: int = 64

    def __post_init__(self) -> None:
        check_prompt(self.prompt, "solvability-check", "prompt")


@dataclass(frozen=True)
class DifficultyFilter:
    """Drop the easiest share of questions by predicted fail rate (paper: removed 9.2%)."""

    enabled: bool = True
    scorer: str = field(default="", metadata=MODEL)  # usually difficulty:<model>
    # share of each filtered generator's rows that reach the cut; the paper's 9.2% of the 2M
    # generated, all from one of two generators: 0.092 * 2 / (1 - 0.201 - 0.194) = 0.304
    # (derivation in configs/paper/scalequest.yaml)
    drop_share: float = 0.304
    apply_to: list[str] | None = field(default=None, metadata=MODEL)  # None = all

    def __post_init__(self) -> None:
        require(0 <= self.drop_share < 1, f"drop_share={self.drop_share} not in [0, 1)")


@dataclass(frozen=True)
class DedupFilter:
    """Exact + near-duplicate removal (none in the authors' code: off; on in plus.yaml)."""

    enabled: bool = False
    normalize: bool = True  # compare case- and whitespace-folded text


@dataclass(frozen=True)
class DecontamFilter:
    """Drop questions sharing an n-gram with an evaluation set (benchmarks = eval.benchmarks).
    The paper did not filter (off; on in plus.yaml) but measured the clean ratio (Table 6),
    which the reward stage measures on the final data (reward.clean_ratio) and the filter
    stage on its kept questions, whether or not this filters."""

    enabled: bool = False
    ngram: int = 13

    def __post_init__(self) -> None:
        positive(ngram=self.ngram)


@dataclass(frozen=True)
class FilterConfig:
    """Stage filter: language -> solvability -> difficulty -> dedup -> decontamination."""

    language: LanguageFilter = field(default_factory=LanguageFilter)
    solvability: SolvabilityFilter = field(default_factory=SolvabilityFilter)
    difficulty: DifficultyFilter = field(default_factory=DifficultyFilter)
    dedup: DedupFilter = field(default_factory=DedupFilter)
    decontam: DecontamFilter = field(default_factory=DecontamFilter)
    shard_size: int = 10_000

    def __post_init__(self) -> None:
        positive(shard_size=self.shard_size)


MAX_LISTED = 200  # decontamination matches listed in the manifest


def _language(rows: list[dict], cfg: LanguageFilter, info: ShardInfo) -> list[dict]:
    out = []
    for row in rows:
        reason = language_reason(row["question"], cfg) if cfg.enabled else None
        row = with_verdict(row, "language", reason or "ok")
        if reason is not None:
            info.drop(f"language:{reason}")
            row = {**row, "dropped_by": "language", "drop_reason": reason}
        out.append(row)
    return out


def _solvability(ctx: StageContext, rows: list[dict], info: ShardInfo) -> list[dict]:
    cfg = ctx.section.solvability
    todo = [i for i, r in enumerate(rows) if "dropped_by" not in r]
    if not cfg.enabled or not todo:
        return rows
    prompt = load_prompt(cfg.prompt)
    replies = ask_judge(ctx, [prompt.fill(rows[i]["question"]) for i in todo], info.seed)
    rows = list(rows)
    for i, reply in zip(todo, replies):
        text = reply["text"]
        info.add_tokens(reply["num_tokens"])
        strict, lax = sv.strict_verdict(text), sv.lax_verdict(text)
        row = with_verdict(with_verdict(rows[i], "solvability", strict), "solvability_lax", lax)
        row = {**row, "judge_reply": text}
        decided = strict if cfg.verdict == "strict" else lax
        if decided != "yes":
            info.drop(f"solvability:{decided}")
            row = {
                **row,
                "dropped_by": "solvability",
                "drop_reason": f"{cfg.verdict} verdict {decided!r} (strict {strict!r}, lax {lax!r})",
            }
        rows[i] = row
    return rows


def _difficulty_scores(ctx: StageContext, rows: list[dict]) -> list[dict]:
    from sqjax.training.regression import predict, text_encoder

    cfg, dcfg = ctx.section.difficulty, ctx.config.difficulty
    apply_to = cfg.apply_to
    todo = [
        i
        for i, r in enumerate(rows)
        if "dropped_by" not in r and (apply_to is None or r["generator"] in apply_to)
    ]
    if not cfg.enabled or not todo:
        return rows
    scorer = llm_for(ctx, cfg.scorer)
    pred = predict(
        scorer.model,
        text_encoder(scorer.tokenizer),
        [rows[i]["question"] for i in todo],
        batch_size=dcfg.batch_size,
        max_len=dcfg.max_len,
        mesh=scorer.mesh,
    )
    rows = list(rows)
    for i, p in zip(todo, pred):
        rows[i] = with_score(rows[i], "fail_rate", float(p))
    return rows


def judge_shard(ctx: StageContext, rows: list[dict], info: ShardInfo) -> list[dict]:
    """The per-row filters; returns every row, dropped ones marked."""
    rows = _language(rows, ctx.section.language, info)
    rows = _solvability(ctx, rows, info)
    return _difficulty_scores(ctx, rows)


def _global(ctx: StageContext, alive: list[dict]) -> tuple[list[dict], list[dict]]:
    s = ctx.section
    dropped: list[dict] = []
    if s.difficulty.enabled:
        scored = [r for r in alive if "fail_rate" in r.get("scores", {})]
        rest = [r for r in alive if "fail_rate" not in r.get("scores", {})]
        kept, cut = F.difficulty_cut(scored, s.difficulty.drop_share, s.difficulty.apply_to)
        ids = {r["id"] for r in kept} | {r["id"] for r in rest}
        alive, dropped = [r for r in alive if r["id"] in ids], dropped + cut
    if s.dedup.enabled:
        alive, dups = F.dedup(alive, s.dedup.normalize)
        dropped += dups
    if s.decontam.enabled:
        index, sizes = F.eval_index(ctx.config.eval.benchmarks, s.decontam.ngram)
        alive, hits = F.decontam(alive, index)
        dropped += hits
        ctx.set_metric(
            "decontam",
            {
                "benchmarks": sizes,
                "matches": [
                    {"id": r["id"], "eval_id": r["contaminated_by"], "ngram": r["matched_ngram"]}
                    for r in hits[:MAX_LISTED]
                ],
            },
        )
    for by, n in Counter(r["dropped_by"] for r in dropped).items():
        ctx.drop(by, n)
    return alive, dropped


def _metrics(ctx: StageContext, judged: list[dict], kept: list[dict], dropped: list[dict]) -> None:
    by = Counter(r["dropped_by"] for r in dropped)
    remaining, removed = len(judged), {}
    for name in ("language", "solvability", "difficulty", "dedup", "decontam"):
        removed[name] = {"rows": by.get(name, 0), "share": by.get(name, 0) / max(1, remaining)}
        remaining -= by.get(name, 0)
    ctx.set_metric("removed", removed)
    pairs = Counter(
        (r["verdicts"]["solvability"], r["verdicts"]["solvability_lax"])
        for r in judged
        if "solvability" in r.get("verdicts", {})
    )
    ctx.set_metric(
        "solvability_strict_vs_lax", {f"{a}/{b}": n for (a, b), n in sorted(pairs.items())}
    )
    judged_n = sum(pairs.values())
    parsed = sum(n for (strict, _), n in pairs.items() if strict != "none")
    ctx.set_metric("solvability_parse_rate", parsed / judged_n if judged_n else None)
    ctx.set_metric("kept_per_generator", dict(Counter(r["generator"] for r in kept)))


def _clean_ratio(ctx: StageContext, kept: list[dict]) -> None:
    """The paper's Table 6 on this stage's output, whether or not decontamination filtered."""
    n = ctx.section.decontam.ngram
    ratios = F.clean_ratios(kept, ctx.config.eval.benchmarks, n)
    filtered = ctx.section.decontam.enabled
    metric = {"ngram": n, "rows": len(kept), "filtered": filtered, "benchmarks": ratios}
    ctx.set_metric("clean_ratio", metric)


def run(ctx: StageContext) -> None:
    s = ctx.section
    rows = ctx.read_stage("gen-questions")
    fn = lambda chunk, info: judge_shard(ctx, chunk, info)
    judged = ctx.map_shards(rows, fn, s.shard_size, step="judge").rows()
    alive = [r for r in judged if "dropped_by" not in r]
    kept, dropped = _global(ctx, alive)
    dropped = [r for r in judged if "dropped_by" in r] + dropped
    ctx.map_shards(dropped, lambda chunk, info: chunk, s.shard_size, step="dropped")
    ctx.map_shards(kept, lambda chunk, info: chunk, s.shard_size)
    _metrics(ctx, judged, kept, dropped)
    _clean_ratio(ctx, kept)
    ctx.declare_row_stats("num_tokens")


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    """The solvability judge's samples and the difficulty scorer's passes over every
    generated question."""
    from sqjax.plan import workload as W
    from sqjax.sampling.engine import round_up

    f, generated_n = run.filter, generated(run)
    jobs: list[Job] = []
    if f.solvability.enabled:
        j = f.solvability
        jobs += W.sample_jobs(
            run,
            stage,
            j.judge,
            j.batch_size,
            rows_multiple,
            W.JUDGE_PROMPT_TOKENS,
            j.max_tokens,
            W.JUDGE_TOKENS,
            generated_n,
        )
    if f.difficulty.enabled:
        rows = round_up(run.difficulty.batch_size, rows_multiple)
        shape = (rows, run.difficulty.max_len, "reward")
        jobs.append(W.Job(stage, f.difficulty.scorer, "score", shape, generated_n / rows))
    return jobs


STAGE = Stage(
    "filter",
    "language, solvability, difficulty, dedup, decontamination filters",
    run,
    config=FilterConfig,
    inputs=("gen-questions",),
    config_deps=("eval.benchmarks", "difficulty.batch_size", "difficulty.max_len"),
    workload=workload,
)
