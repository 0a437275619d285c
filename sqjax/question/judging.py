"""Asking a model about a list of prompts: the configured solvability judge
(filter.solvability), or any local model / OpenAI-compatible endpoint (`llm_replies`)."""

from __future__ import annotations

from sqjax.pipeline.context import StageContext
from sqjax.pipeline.models import llm_for
from sqjax.question.http_rewriter import ChatClient, HttpEndpoint
from sqjax.question.sampling import chat_replies


def ask_judge(ctx: StageContext, messages: list[str], seed: int) -> list[dict]:
    """The judge's greedy reply (a dict with `text` and `num_tokens`) to each user message,
    after filter.solvability's system turn, with its token budget and batch size."""
    cfg = ctx.config.filter.solvability
    replies = chat_replies(
        llm_for(ctx, cfg.judge),
        messages,
        temperature=0.0,
        max_tokens=cfg.max_tokens,
        batch_size=cfg.batch_size,
        seed=seed,
        system=cfg.system,
    )
    return [r[0] for r in replies]


def llm_replies(
    ctx: StageContext,
    who: str | HttpEndpoint,
    messages: list[str],
    *,
    temperature: float,
    max_tokens: int,
    batch_size: int,
    system: str | None,
    seed: int,
) -> list[str]:
    """One reply per user message from `who`: a `models` table name (or `<stage>:<name>`),
    sampled locally, or an OpenAI-compatible endpoint (`batch_size` requests in flight)."""
    if isinstance(who, HttpEndpoint):
        client = ChatClient(who.url, who.model, who.api_key_env)
        return client.complete_many(messages, temperature, max_tokens, batch_size, system=system)
    replies = chat_replies(
        llm_for(ctx, who),
        messages,
        temperature=temperature,
        max_tokens=max_tokens,
        batch_size=batch_size,
        seed=seed,
        system=system,
    )
    return [r[0]["text"] for r in replies]
