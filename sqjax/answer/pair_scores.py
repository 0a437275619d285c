"""Scores for (question, response) pairs: a reward model or an LM judge, one entry point.

mode "reward_model": a score-head model (internlm2-7b-reward, whose reward token the sampler
appends; any HF `*ForSequenceClassification` with one label) reads the chat
[user: question, assistant: response] through its own chat template
(`LLM.reward_input_ids`). Pairs longer than `max_len` tokens get NaN (never
selected) and are counted by the caller. mode "judge": P("Yes") of an LM asked whether the
solution is correct (sqjax.answer.judge).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqjax.answer.judge import judge_scores
from sqjax.errors import SqjaxError


def reward_model_scores(
    llm: Any,
    questions: Sequence[str],
    responses: Sequence[str],
    *,
    max_len: int,
    batch_size: int = 16,
) -> list[float]:
    """Reward of each pair under the LLM handle's score head; NaN for pairs whose chat
    exceeds max_len tokens."""
    if llm.config.head != "score":
        raise SqjaxError(
            "reward.mode=reward_model needs a score-head model (e.g. internlm2-7b-reward or an "
            "HF *ForSequenceClassification); set reward.mode: judge to score with an LM"
        )
    fits = [
        len(llm.reward_input_ids(q, r)) <= max_len
        for q, r in zip(questions, responses, strict=True)
    ]
    keep = [i for i, ok in enumerate(fits) if ok]
    scored = (
        llm.score_rewards(
            [questions[i] for i in keep], [responses[i] for i in keep], batch_size=batch_size
        )
        if keep
        else []
    )
    out = [math.nan] * len(questions)
    for i, s in zip(keep, scored):
        out[i] = float(s)
    return out


def pair_scores(
    mode: str,
    llm: Any,
    questions: Sequence[str],
    responses: Sequence[str],
    *,
    max_len: int,
    judge_max_tokens: int,
    batch_size: int = 16,
) -> list[float]:
    """Scores by `mode` ("reward_model" or "judge") on an LLM handle; higher is better."""
    if mode == "reward_model":
        return reward_model_scores(
            llm, questions, responses, max_len=max_len, batch_size=batch_size
        )
    if mode == "judge":
        if llm.config.head != "lm":
            raise SqjaxError(
                "reward.mode=judge needs a language model, got a score-head model; "
                "set reward.mode: reward_model"
            )
        return judge_scores(
            llm, questions, responses, max_response_tokens=judge_max_tokens, batch_size=batch_size
        )
    raise SqjaxError(f"reward.mode={mode!r} is not one of 'reward_model', 'judge'")
