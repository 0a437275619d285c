"""Stage gen-questions: questions from scratch. Each generator gets only its pre-query prefix
(Qwen: system turn + `<|im_start|>user\\n`; DeepSeek: BOS + `User: `) and samples at
temperature 1.0, top-p 0.99, up to 512 tokens (the authors' code: 1024), stopping at the chat's
special tokens. Every row records its generator; `finish_reason` "length" marks a question
cut at max_tokens (kept: the paper does not drop them; the filters judge them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqjax.errors import SqjaxError
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.stage import Stage
from sqjax.question.generation import QuestionSampling, generate_questions


@dataclass(frozen=True)
class GenQuestionsConfig(QuestionSampling):
    """Stage gen-questions: questions from each generator's pre-query prefix."""

    generators: list[str] = field(default_factory=list, metadata=MODEL)
    num_questions: int = 1_000_000  # per generator
    shard_size: int = 10_000


def run(ctx: StageContext) -> None:
    if not ctx.section.generators:
        raise SqjaxError("gen_questions.generators is empty; name at least one model")
    generate_questions(ctx, list(ctx.section.generators), ctx.section)


STAGE = Stage(
    "gen-questions",
    "sample questions from scratch with each generator",
    run,
    config=GenQuestionsConfig,
)
