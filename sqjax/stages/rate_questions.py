"""Stage rate-questions: the paper's question-quality evaluation (Figures 4, 5, 9). An LLM
judge (a local model or an OpenAI-compatible endpoint; the paper used GPT-4o) rates a seeded
sample of each (stage, generator)'s questions twice: solvability with the Figure 12 prompt
(strict and lax Yes/No, as in the filter) and difficulty level with the Figure 13 prompt
(very easy .. very hard, read from the reply's JSON). Sources: raw QFT output (qpo-sample),
generator output (gen-questions; QPO output for `qpo:` generators) and filtered questions
(filter). The rows keep both replies; the manifest's `question_quality` holds, per source,
the solvable ratio, the difficulty distribution and the parse rates (the report's table).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from sqjax.pipeline.checks import positive, require, sampling_limits
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.stage import Stage
from sqjax.question import quality
from sqjax.question import solvability as sv
from sqjax.question.http_rewriter import HttpEndpoint
from sqjax.question.judging import llm_replies
from sqjax.question.prompt_library import PAPER_PROMPTS, PAPER_SYSTEM, check_prompt, load_prompt

RATED_STAGES = ("qpo-sample", "gen-questions", "filter")


@dataclass(frozen=True)
class RateQuestionsConfig:
    """Stage rate-questions: the paper's question-quality measurement (Figures 4, 5, 9): an
    LLM judge (paper: GPT-4o) rates a sample of each (stage, generator)'s questions for
    solvability (Figure 12 prompt, Yes/No) and difficulty level (Figure 13 prompt, very easy
    .. very hard). Sources: raw QFT output (qpo-sample), generator output (gen-questions;
    QPO output for `qpo:` generators) and filtered questions (filter). Empty judge = skip."""

    judge: str | HttpEndpoint = field(default="", metadata=MODEL)  # model name or endpoint
    sources: list[str] = field(default_factory=lambda: list(RATED_STAGES))
    questions_per_source: int = 1_000  # seeded sample per (stage, generator); sqjax choice
    solvability_prompt: str = PAPER_PROMPTS["solvability-check"]
    difficulty_prompt: str = PAPER_PROMPTS["difficulty-rating"]
    system: str | None = PAPER_SYSTEM
    temperature: float = 0.0
    max_tokens: int = 2048
    batch_size: int = 64
    shard_size: int = 1_000

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in RATED_STAGES]
        require(not unknown, f"sources {unknown} not among {list(RATED_STAGES)}")
        check_prompt(self.solvability_prompt, "solvability-check", "solvability_prompt")
        check_prompt(self.difficulty_prompt, "difficulty-rating", "difficulty_prompt")
        sampling_limits(self.temperature, 1.0, self.max_tokens)
        positive(questions_per_source=self.questions_per_source)
        positive(batch_size=self.batch_size, shard_size=self.shard_size)


def sample_sources(ctx: StageContext) -> list[dict]:
    """Up to `questions_per_source` questions per (stage, generator), a seeded sample in
    input order, as items {"id", "stage", "generator", "question"}."""
    s, items = ctx.section, []
    for stage in s.sources:
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in ctx.read_stage(stage):
            groups[row.get("generator", "")].append(row)
        for generator, rows in groups.items():
            rng = random.Random(f"{ctx.config.seed}/{stage}/{generator}")
            keep = sorted(rng.sample(range(len(rows)), min(len(rows), s.questions_per_source)))
            items += [
                {
                    "id": f"{stage}/{rows[i]['id']}",
                    "stage": stage,
                    "generator": generator,
                    "question": rows[i]["question"],
                }
                for i in keep
            ]
    return items


def _ask(ctx: StageContext, prompt_name: str, rows: list[dict], seed: int) -> list[str]:
    s, prompt = ctx.section, load_prompt(prompt_name)
    return llm_replies(
        ctx,
        s.judge,
        [prompt.fill(r["question"]) for r in rows],
        temperature=s.temperature,
        max_tokens=s.max_tokens,
        batch_size=s.batch_size,
        system=s.system,
        seed=seed,
    )


def rate_shard(ctx: StageContext, rows: list[dict], info: ShardInfo) -> list[dict]:
    """Both verdicts for one shard of sampled questions."""
    solvable = _ask(ctx, ctx.section.solvability_prompt, rows, info.seed)
    rated = _ask(ctx, ctx.section.difficulty_prompt, rows, info.seed)
    return [
        {
            **row,
            "solvable": sv.strict_verdict(s),
            "solvable_lax": sv.lax_verdict(s),
            "difficulty": quality.difficulty_level(d),
            "judge_solvable": s,
            "judge_difficulty": d,
        }
        for row, s, d in zip(rows, solvable, rated)
    ]


def quality_table(rows: list[dict]) -> dict[str, dict]:
    """{"<stage> (<generator>)": summary with `stage`, `generator` and `kind`}."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["stage"], r["generator"])].append(r)
    return {
        f"{stage} ({generator})": {
            "stage": stage,
            "generator": generator,
            "kind": quality.source_kind(stage, generator),
            **quality.summarize(group),
        }
        for (stage, generator), group in groups.items()
    }


def run(ctx: StageContext) -> None:
    s = ctx.section
    items = sample_sources(ctx) if s.judge else []
    if not s.judge:
        ctx.log.info("rate-questions: no judge configured (rate_questions.judge); nothing rated")
    fn = lambda chunk, info: rate_shard(ctx, chunk, info)
    out = ctx.map_shards(items, fn, s.shard_size, desc="rate questions").rows()
    judge = s.judge if isinstance(s.judge, str) else f"{s.judge.url} {s.judge.model}"
    ctx.set_metric("question_quality", {"judge": judge, "sources": quality_table(out)})


STAGE = Stage(
    "rate-questions",
    ("rate questions' solvability and difficulty with an LLM judge (the paper's Fig. 4/5/9)"),
    run,
    config=RateQuestionsConfig,
    inputs=("qpo-sample", "gen-questions", "filter"),
)
