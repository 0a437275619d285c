"""Sampling through sqjax.sampling for the question stages: new questions from the bare
pre-query prefix, and one-turn chat replies (optimizer rewrites, judge verdicts, solutions).

Prompts are passed as token ids encoded with `chat.encoder` (special tokens parsed from the
text, none added), so a template that writes BOS (DeepSeek) gets exactly one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqjax.data.chat import chat_format, encoder


def _params(**kw: Any):
    from sqjax.sampling.api import SamplingParams

    return SamplingParams(**kw)


def sample_questions(
    llm: Any,
    count: int,
    *,
    temperature: float,
    top_p: float,
    max_tokens: int,
    batch_size: int,
    seed: int,
) -> list[dict]:
    """`count` completions of the pre-query prefix, cut at the chat's special tokens:
    [{"question", "finish_reason", "num_tokens"}], deterministic given `seed` (`llm`: a
    sqjax.LLM handle)."""
    fmt = chat_format(llm.tokenizer)
    prompt = encoder(llm.tokenizer)(fmt.prefix)
    params = _params(
        n=count,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop_token_ids=list(fmt.stop_ids),
        seed=seed % 2**32,
    )
    done = llm.generate([prompt], params, max_batch=batch_size)
    return [
        {
            "question": o.text.strip(),
            "finish_reason": o.finish_reason,
            "num_tokens": len(o.token_ids),
        }
        for o in done[0].outputs
    ]


def chat_replies(
    llm: Any,
    messages: Sequence[str],
    *,
    temperature: float,
    max_tokens: int,
    batch_size: int,
    seed: int,
    n: int = 1,
    top_p: float = 1.0,
    system: str | None = None,
) -> list[list[dict]]:
    """`n` replies per user message in the model's own chat template, after a `system` turn
    when given (None: the template's default): per message, [{"text", "finish_reason",
    "num_tokens"}]. A message whose prompt + max_tokens does not fit the model's context is
    not sampled: its replies are empty with finish reason `prompt_too_long`, so the caller's
    per-row rules (no verdict, no answer, no rewrite) drop that row and the stage goes on."""
    if not messages:
        return []
    fmt, encode = chat_format(llm.tokenizer, system), encoder(llm.tokenizer)
    prompts = [encode(fmt.chat_prompt(m)) for m in messages]
    params = _params(
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop_token_ids=list(fmt.stop_ids),
        seed=seed % 2**32,
    )
    limit = llm.config.max_position_embeddings
    fits = [i for i, p in enumerate(prompts) if len(p) + max_tokens <= limit]
    too_long = {"text": "", "finish_reason": "prompt_too_long", "num_tokens": 0}
    replies = [[dict(too_long) for _ in range(n)] for _ in prompts]
    if not fits:
        return replies
    fitting = [prompts[i] for i in fits]
    done = llm.generate(fitting, params, max_batch=batch_size)
    for i, c in zip(fits, done, strict=True):
        replies[i] = [
            {
                "text": o.text.strip(),
                "finish_reason": o.finish_reason,
                "num_tokens": len(o.token_ids),
            }
            for o in c.outputs
        ]
    return replies
