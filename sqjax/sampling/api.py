"""Public sampling and scoring API with vLLM-like names.

`LLM` (sqjax.sampling.llm) is the long-lived handle: build it once per model and call its
methods. The functions here are one-call conveniences that build a handle for the call
(placing the weights on `mesh` first when given): fine in a notebook, wasteful in a loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from jax.sharding import Mesh

from sqjax.sampling.engine import DRAIN_MIN_STEPS
from sqjax.sampling.llm import LLM, Completion, CompletionOutput, CompletionScore
from sqjax.sampling.params import SamplingParams

__all__ = [
    "LLM",
    "Completion",
    "CompletionOutput",
    "CompletionScore",
    "SamplingParams",
    "generate",
    "score_logprobs",
    "score_rewards",
    "yes_probability",
]


def generate(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    params: SamplingParams | Sequence[SamplingParams] | None = None,
    *,
    mesh: Mesh | None = None,
    max_batch: int = 32,
    chunk: int = 16,
    drain_min_steps: int = DRAIN_MIN_STEPS,
    progress: bool = True,
    engine_stats: dict | None = None,
) -> list[Completion]:
    """`LLM(model, tokenizer, mesh=mesh).generate(prompts, params)`; pass a dict as
    engine_stats to receive the engine's counters (compiles, tokens, seconds)."""
    llm = LLM(
        model,
        tokenizer,
        mesh=mesh,
        max_batch=max_batch,
        chunk=chunk,
        drain_min_steps=drain_min_steps,
    )
    out = llm.generate(prompts, params, progress=progress)
    if engine_stats is not None:
        engine_stats.update(llm.stats)
    return out


def score_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    completions: Sequence[str | Sequence[int]],
    *,
    mesh: Mesh | None = None,
    batch_size: int = 16,
) -> list[CompletionScore]:
    """`LLM.score_logprobs` on a handle built for the call."""
    llm = LLM(model, tokenizer, mesh=mesh)
    return llm.score_logprobs(prompts, completions, batch_size=batch_size)


def yes_probability(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    words: Sequence[str] = ("Yes",),
    *,
    mesh: Mesh | None = None,
    batch_size: int = 16,
) -> list[float]:
    """`LLM.yes_probability` on a handle built for the call."""
    return LLM(model, tokenizer, mesh=mesh).yes_probability(prompts, words, batch_size=batch_size)


def score_rewards(
    model,
    tokenizer,
    questions: Sequence[str],
    responses: Sequence[str],
    *,
    mesh: Mesh | None = None,
    batch_size: int = 16,
) -> list[float]:
    """`LLM.score_rewards` on a handle built for the call."""
    llm = LLM(model, tokenizer, mesh=mesh)
    return llm.score_rewards(questions, responses, batch_size=batch_size)
