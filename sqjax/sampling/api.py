"""Public sampling and scoring API with vLLM-like names.

Prompts are strings or token-id lists. A string is tokenized exactly as given with
`tokenizer.encode(text)`: no chat template is applied, and a BOS token appears only if the
tokenizer adds one by itself (apply a chat template beforehand when you want one). EOS ids
default to the model config's `eos_token_ids` plus `tokenizer.eos_token_id`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
from jax.sharding import Mesh

from sqjax.errors import SqjaxError
from sqjax.sampling import scoring
from sqjax.sampling.engine import Engine, Request
from sqjax.sampling.params import SamplingParams

__all__ = [
    "Completion",
    "CompletionOutput",
    "CompletionScore",
    "SamplingParams",
    "generate",
    "score_logprobs",
    "score_rewards",
    "yes_probability",
]


@dataclasses.dataclass
class CompletionOutput:
    """One sample. logprobs: raw log-softmax of each token (None unless requested)."""

    index: int
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (EOS, stop id or stop string) or "length"
    logprobs: list[float] | None = None
    cumulative_logprob: float | None = None


@dataclasses.dataclass
class Completion:
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


@dataclasses.dataclass
class CompletionScore:
    """Log-probability of a completion given its prompt (raw model distribution)."""

    sum_logprob: float
    mean_logprob: float
    num_tokens: int


def _prompt_ids(tokenizer, prompt, where: str) -> list[int]:
    if isinstance(prompt, str):
        if tokenizer is None:
            raise SqjaxError(
                f"{where} is a string but no tokenizer was given; pass a tokenizer or token ids"
            )
        return list(tokenizer.encode(prompt))
    ids = [int(t) for t in prompt]
    if not ids:
        raise SqjaxError(f"{where} is empty; every prompt needs at least one token")
    return ids


def _eos_ids(model, tokenizer) -> tuple[int, ...]:
    ids = list(model.config.eos_token_ids)
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    if eos is not None and eos not in ids:
        ids.append(int(eos))
    return tuple(ids)


def generate(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    params: SamplingParams | Sequence[SamplingParams] | None = None,
    *,
    mesh: Mesh | None = None,
    max_batch: int = 32,
    chunk: int = 16,
    progress: bool = True,
    engine_stats: dict | None = None,
) -> list[Completion]:
    """Samples completions for every prompt with continuous batching over `max_batch` slots.

    `params` is one SamplingParams for all prompts or one per prompt. Rows are sharded over
    the mesh's (data, fsdp) axes and weights over `tensor` (SAMPLE_RULES). Pass a dict as
    engine_stats to receive counters (compiles, tokens, seconds).
    """
    params = params or SamplingParams()
    plist = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
    if len(plist) != len(prompts):
        raise SqjaxError(
            f"got {len(plist)} SamplingParams for {len(prompts)} prompts; pass one or one per prompt"
        )
    if not prompts:
        return []
    eos = _eos_ids(model, tokenizer)
    requests = []
    for i, (prompt, p) in enumerate(zip(prompts, plist)):
        if p.stop_strings and tokenizer is None:
            raise SqjaxError(f"prompt {i}: stop strings {p.stop_strings!r} need a tokenizer")
        stop_ids = tuple(
            dict.fromkeys((() if p.ignore_eos else eos) + tuple(p.stop_token_ids or ()))
        )
        seed = p.seed if p.seed is not None else int.from_bytes(os.urandom(4), "little")
        requests.append(Request(_prompt_ids(tokenizer, prompt, f"prompt {i}"), p, stop_ids, seed))
    engine = Engine(
        model, tokenizer, mesh=mesh, max_batch=max_batch, chunk=chunk, progress=progress
    )
    samples = engine.run(requests)
    if engine_stats is not None:
        engine_stats.update(engine.stats)
    out = []
    for prompt, req, smps in zip(prompts, requests, samples):
        outputs = []
        for s in smps:
            lps = s.logprobs if req.params.logprobs is not None else None
            outputs.append(
                CompletionOutput(
                    index=s.index,
                    text=s.text,
                    token_ids=s.token_ids,
                    finish_reason=s.finish_reason,
                    logprobs=lps,
                    cumulative_logprob=float(np.sum(lps)) if lps is not None else None,
                )
            )
        out.append(Completion(prompt if isinstance(prompt, str) else None, req.prompt_ids, outputs))
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
    """Summed and mean log-probs of each completion given its prompt (DPO reference values).

    Strings: the prompt is encoded as in `generate`, the completion with
    add_special_tokens=False, and the two id lists are concatenated (as TRL does).
    """
    if len(prompts) != len(completions):
        raise SqjaxError(
            f"{len(prompts)} prompts but {len(completions)} completions; pass one completion per prompt"
        )
    seqs, spans = [], []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        p_ids = _prompt_ids(tokenizer, p, f"prompt {i}")
        c_ids = (
            list(tokenizer.encode(c, add_special_tokens=False))
            if isinstance(c, str)
            else [int(t) for t in c]
        )
        if not c_ids:
            raise SqjaxError(f"completion {i} is empty; nothing to score")
        seqs.append(p_ids + c_ids)
        spans.append((len(p_ids), len(c_ids)))
    rows = scoring.Batcher(model, mesh, batch_size).run(scoring.token_logprobs, seqs)
    out = []
    for lp_L, (start, n) in zip(rows, spans):
        total = float(np.sum(lp_L[start - 1 : start - 1 + n], dtype=np.float64))
        out.append(CompletionScore(total, total / n, n))
    return out


def yes_probability(
    model,
    tokenizer,
    prompts: Sequence[str | Sequence[int]],
    words: Sequence[str] = ("Yes",),
    *,
    mesh: Mesh | None = None,
    batch_size: int = 16,
) -> list[float]:
    """P(next token is one of `words` | prompt), for LM-as-judge verdicts (raw distribution).

    Each word must encode to exactly one token (e.g. "Yes" or " Yes"); their probabilities add.
    """
    ids = []
    for w in words:
        enc = list(tokenizer.encode(w, add_special_tokens=False))
        if len(enc) != 1:
            raise SqjaxError(
                f"judge word {w!r} encodes to {len(enc)} tokens {enc}; use words that are one token each"
            )
        ids.append(enc[0])
    seqs = [_prompt_ids(tokenizer, p, f"prompt {i}") for i, p in enumerate(prompts)]
    rows = scoring.Batcher(model, mesh, batch_size).run(scoring.next_token_logprobs, seqs)
    return [float(np.sum(np.exp(r[ids].astype(np.float64)))) for r in rows]


def reward_input_ids(model, tokenizer, question: str, response: str) -> list[int]:
    """The chat (user question, assistant response) as the reward model reads it; InternLM2
    reward models get the reward token appended, as InternLM2's get_score does."""
    chat = [{"role": "user", "content": question}, {"role": "assistant", "content": response}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=False)
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    if model.config.reward_token_id is not None:
        ids.append(int(model.config.reward_token_id))
    return ids


def score_rewards(
    model,
    tokenizer,
    questions: Sequence[str],
    responses: Sequence[str],
    *,
    mesh: Mesh | None = None,
    batch_size: int = 16,
) -> list[float]:
    """Reward score of each (question, response) pair under a score-head model."""
    if model.config.head != "score":
        raise SqjaxError(
            "score_rewards needs a score-head model (config head='score'), got an LM-head model"
        )
    if len(questions) != len(responses):
        raise SqjaxError(
            f"{len(questions)} questions but {len(responses)} responses; pass one response per question"
        )
    seqs = [reward_input_ids(model, tokenizer, q, r) for q, r in zip(questions, responses)]
    return [float(r) for r in scoring.Batcher(model, mesh, batch_size).run(scoring.rewards, seqs)]
