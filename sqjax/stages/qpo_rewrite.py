"""Stage qpo-rewrite: an optimizer LLM rewrites each sampled question toward one goal, chosen
per question by a seeded coin (P(solvability) = `solvability_share`; the paper's random
choice), with the library prompt `prompts[goal]` (default: the paper's Figures 10 and 11)
sent as the user turn after `system` (default: the authors' "You are a helpful assistant.").
The optimizer is a local model (greedy by default, through the sampler) or an
OpenAI-compatible endpoint (the paper used GPT-4o-mini at temperature 0). The rewrite is the
text after the reply's last final-question marker; rows without one are dropped and counted
("no_final_question"); the manifest's `parse_rate` gives the parsed share per goal.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from sqjax.errors import SqjaxError
from sqjax.pipeline import shards as sh
from sqjax.pipeline.checks import positive, require, sampling_limits
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.stage import Stage
from sqjax.question.http_rewriter import HttpEndpoint
from sqjax.question.judging import llm_replies
from sqjax.question.prompt_library import PAPER_PROMPTS, PAPER_SYSTEM, check_prompt
from sqjax.question.prompts import GOALS, rewrite_prompt
from sqjax.question.rewrite_parse import parse_rewrite


def _paper_rewrite_prompts() -> dict[str, str]:
    return {
        "solvability": PAPER_PROMPTS["rewrite-solvability"],  # Figure 10
        "difficulty": PAPER_PROMPTS["rewrite-difficulty"],  # Figure 11
    }


@dataclass(frozen=True)
class QpoRewriteConfig:
    """Stage qpo-rewrite: an optimizer LLM rewrites each question toward one goal."""

    rewriter: str | HttpEndpoint = field(default="", metadata=MODEL)  # model name or endpoint
    solvability_share: float = 0.5  # per-question coin flip: solvability vs difficulty prompt
    # goal -> prompt library name (sqjax/resources/prompts/index.yaml); paper: Figures 10, 11;
    # sqjax's rewordings: sqjax-qpo-solvability, sqjax-qpo-difficulty
    prompts: dict[str, str] = field(default_factory=_paper_rewrite_prompts)
    system: str | None = PAPER_SYSTEM  # the authors' system turn; None = the template's own
    temperature: float = 0.0
    max_tokens: int = 2048
    shard_size: int = 1_000
    batch_size: int = 64

    def __post_init__(self) -> None:
        require(0 <= self.solvability_share <= 1, "solvability_share must be in [0, 1]")
        require(
            set(self.prompts) == {"solvability", "difficulty"},
            f"prompts has goals {sorted(self.prompts)}; give exactly solvability and difficulty",
        )
        for goal, name in self.prompts.items():
            check_prompt(name, f"rewrite-{goal}", f"prompts.{goal}")
        sampling_limits(self.temperature, 1.0, self.max_tokens)
        positive(shard_size=self.shard_size, batch_size=self.batch_size)


def goals(n: int, seed: int, solvability_share: float) -> list[str]:
    """One goal per row: "solvability" with probability `solvability_share`, else
    "difficulty"; a function of (seed, n) only."""
    rng = random.Random(seed)
    return ["solvability" if rng.random() < solvability_share else "difficulty" for _ in range(n)]


def optimizer_replies(ctx: StageContext, prompts: list[str], seed: int) -> list[str]:
    """The optimizer's reply to each prompt (HTTP endpoint or local model)."""
    s = ctx.section
    return llm_replies(
        ctx,
        s.rewriter,
        prompts,
        temperature=s.temperature,
        max_tokens=s.max_tokens,
        batch_size=s.batch_size,
        system=s.system,
        seed=seed,
    )


def rewrite_shard(ctx: StageContext, rows: list[dict], info: ShardInfo) -> list[dict]:
    chosen = goals(len(rows), info.seed, ctx.section.solvability_share)
    names = ctx.section.prompts
    prompts = [rewrite_prompt(g, r["question"], names) for g, r in zip(chosen, rows)]
    replies = optimizer_replies(ctx, prompts, info.seed)
    out = []
    for row, goal, reply in zip(rows, chosen, replies):
        rewrite = parse_rewrite(reply)
        if rewrite is None:
            info.drop(f"no_final_question:{goal}")
            continue
        out.append({**row, "goal": goal, "rewrite": rewrite, "optimizer_reply": reply})
    return out


def run(ctx: StageContext) -> None:
    if not ctx.section.rewriter:
        raise SqjaxError("qpo_rewrite.rewriter is empty; name a model or give an endpoint")
    rows = ctx.read_stage("qpo-sample")
    empty = sum(not r["question"].strip() for r in rows)
    if empty:
        ctx.drop("empty_question", empty)
    rows = [r for r in rows if r["question"].strip()]
    fn = lambda chunk, info: rewrite_shard(ctx, chunk, info)
    output = ctx.map_shards(rows, fn, ctx.section.shard_size)
    unparsed: Counter[str] = Counter()
    for shard in sh.list_shards(output.directory).values():
        unparsed.update(sh.read_stats(shard).get("drops", {}))
    out = output.rows()
    parse_rate = {}
    for goal in GOALS:
        parsed = sum(r["goal"] == goal for r in out)
        asked = parsed + unparsed[f"no_final_question:{goal}"]
        ctx.set_metric(f"rewrites/{goal}", parsed)
        parse_rate[goal] = {"asked": asked, "parsed": parsed, "rate": parsed / max(1, asked)}
    ctx.set_metric("parse_rate", parse_rate)


STAGE = Stage(
    "qpo-rewrite",
    "rewrite sampled questions toward solvability or difficulty",
    run,
    config=QpoRewriteConfig,
    inputs=("qpo-sample",),
)
