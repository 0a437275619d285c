"""LM-as-judge scoring of (question, response) pairs: P("Yes") to a correctness question.

Used by the reward stage when no reward model is available (`reward.mode: judge`, the demo):
the judge reads the question and the proposed solution in one user turn, is asked whether the
solution is correct, and the score is the probability that its reply starts with "Yes"
(`sqjax.sampling.api.yes_probability`, raw distribution, no sampling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqjax.data.chat import chat_format, encoder

JUDGE_TEMPLATE = (
    "Here is a math problem and a proposed solution.\n\n"
    "Problem:\n{question}\n\n"
    "Proposed solution:\n{response}\n\n"
    "Is the proposed solution correct, with the right final answer? Answer Yes or No."
)
JUDGE_WORDS = ("Yes",)


def clip_tail(tokenizer: Any, text: str, max_tokens: int) -> str:
    """`text` cut to its last `max_tokens` tokens (the final answer is at the end), marked
    with a leading "..." when cut."""
    ids = encoder(tokenizer)(text)
    if len(ids) <= max_tokens:
        return text
    return "..." + tokenizer.decode(ids[-max_tokens:], skip_special_tokens=False)


def judge_prompt_ids(
    tokenizer: Any, question: str, response: str, max_response_tokens: int
) -> list[int]:
    """Token ids of the judge chat, ending with the generation prompt (the reply comes next)."""
    fmt = chat_format(tokenizer)
    body = JUDGE_TEMPLATE.format(
        question=question.strip(), response=clip_tail(tokenizer, response, max_response_tokens)
    )
    return encoder(tokenizer)(fmt.chat_prompt(body))


def judge_scores(
    llm: Any,
    questions: Sequence[str],
    responses: Sequence[str],
    *,
    max_response_tokens: int,
    batch_size: int = 16,
) -> list[float]:
    """P("Yes") of the judge (an LLM handle) for each (question, response) pair."""
    tok = llm.tokenizer
    prompts = [
        judge_prompt_ids(tok, q, r, max_response_tokens) for q, r in zip(questions, responses)
    ]
    return llm.yes_probability(prompts, JUDGE_WORDS, batch_size=batch_size)
