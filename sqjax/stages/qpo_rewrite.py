"""Stage qpo-rewrite: an optimizer LLM rewrites each sampled question toward one goal, chosen
per question by a seeded coin (P(solvability) = `solvability_share`; the paper's random
choice), with sqjax's two prompts (sqjax.question.prompts). The optimizer is a local model
(greedy by default, through the sampler) or an OpenAI-compatible endpoint (the paper used
GPT-4o-mini at temperature 0). The rewrite is the text after the reply's last final-question
marker; rows without one are dropped and counted ("no_final_question").
"""

from __future__ import annotations

import random

from sqjax.errors import SqjaxError
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.sections import HttpEndpoint
from sqjax.question.http_rewriter import ChatClient
from sqjax.question.prompts import rewrite_prompt
from sqjax.question.rewrite_parse import parse_rewrite
from sqjax.question.sampling import chat_replies
from sqjax.stages.common import load_entry

NAME = "qpo-rewrite"
DESCRIPTION = "rewrite sampled questions toward solvability or difficulty"


def goals(n: int, seed: int, solvability_share: float) -> list[str]:
    """One goal per row: "solvability" with probability `solvability_share`, else
    "difficulty"; a function of (seed, n) only."""
    rng = random.Random(seed)
    return ["solvability" if rng.random() < solvability_share else "difficulty" for _ in range(n)]


def optimizer_replies(ctx: StageContext, prompts: list[str], seed: int) -> list[str]:
    """The optimizer's reply to each prompt (HTTP endpoint or local model)."""
    s = ctx.section
    if isinstance(s.rewriter, HttpEndpoint):
        client = ChatClient(s.rewriter.url, s.rewriter.model, s.rewriter.api_key_env)
        return client.complete_many(prompts, s.temperature, s.max_tokens, s.batch_size)
    model, tok, mesh = load_entry(ctx, s.rewriter)
    replies = chat_replies(
        model,
        tok,
        mesh,
        prompts,
        temperature=s.temperature,
        max_tokens=s.max_tokens,
        batch_size=s.batch_size,
        seed=seed,
    )
    return [r[0]["text"] for r in replies]


def rewrite_shard(ctx: StageContext, rows: list[dict], info: ShardInfo) -> list[dict]:
    chosen = goals(len(rows), info.seed, ctx.section.solvability_share)
    prompts = [rewrite_prompt(g, r["question"]) for g, r in zip(chosen, rows)]
    replies = optimizer_replies(ctx, prompts, info.seed)
    out = []
    for row, goal, reply in zip(rows, chosen, replies):
        rewrite = parse_rewrite(reply)
        if rewrite is None:
            info.drop("no_final_question")
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
    out = ctx.map_shards(rows, fn, ctx.section.shard_size).rows()
    for goal in ("solvability", "difficulty"):
        ctx.set_metric(f"rewrites/{goal}", sum(r["goal"] == goal for r in out))
