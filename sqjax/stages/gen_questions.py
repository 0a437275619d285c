"""Stage gen-questions: questions from scratch. Each generator gets only its pre-query prefix
(Qwen: system turn + `<|im_start|>user\\n`; DeepSeek: BOS + `User: `) and samples at
temperature 1.0, top-p 0.99, up to 512 tokens (the authors' code: 1024), stopping at the chat's
special tokens. Every row records its generator; `finish_reason` "length" marks a question
cut at max_tokens (kept: the paper does not drop them; the filters judge them)."""

from __future__ import annotations

from sqjax.errors import SqjaxError
from sqjax.pipeline import sections as S
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.stage import Stage
from sqjax.question.generation import generate_questions


def run(ctx: StageContext) -> None:
    if not ctx.section.generators:
        raise SqjaxError("gen_questions.generators is empty; name at least one model")
    generate_questions(ctx, list(ctx.section.generators), ctx.section)


STAGE = Stage(
    "gen-questions",
    "sample questions from scratch with each generator",
    run,
    config=S.GenQuestionsConfig,
)
