"""Asking the configured judge (filter.solvability) about a list of questions."""

from __future__ import annotations

from sqjax.pipeline.context import StageContext
from sqjax.question import solvability as sv
from sqjax.question.sampling import chat_replies
from sqjax.stages.common import load_entry


def ask_judge(ctx: StageContext, template: str, questions: list[str], seed: int) -> list[dict]:
    """The judge's greedy reply (a dict with `text` and `num_tokens`) to `template` filled
    with each question, with the token budget and batch size of filter.solvability."""
    cfg = ctx.config.filter.solvability
    model, tok, mesh = load_entry(ctx, cfg.judge)
    replies = chat_replies(
        model,
        tok,
        mesh,
        [sv.judge_prompt(template, q) for q in questions],
        temperature=0.0,
        max_tokens=cfg.max_tokens,
        batch_size=cfg.batch_size,
        seed=seed,
    )
    return [r[0] for r in replies]
