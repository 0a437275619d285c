"""Stage gen-questions: questions from scratch. Each generator gets only its pre-query prefix
(Qwen: system turn + `<|im_start|>user\\n`; DeepSeek: BOS + `User: `) and samples at
temperature 1.0, top-p 0.99, up to 512 tokens (the authors' code: 1024), stopping at the chat's
special tokens. Every row records its generator; `finish_reason` "length" marks a question
cut at max_tokens (kept: the paper does not drop them; the filters judge them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqjax.errors import SqjaxError
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.stage import Stage
from sqjax.question.generation import QuestionSampling, generate_questions

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


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


def generated(run: Any) -> float:
    """Questions all generators write (what filter, gen-responses, reward and sft size from)."""
    return run.gen_questions.num_questions * len(run.gen_questions.generators)


def sampling_jobs(
    run: Any, stage: str, refs: list[str], s: QuestionSampling, rows_multiple: int
) -> list[Job]:
    """Insert and decode jobs of `s.num_questions` questions from each model's prefix."""
    from sqjax.plan import workload as W

    return [
        job
        for ref in refs
        for job in W.sample_jobs(
            run,
            stage,
            ref,
            s.batch_size,
            rows_multiple,
            W.PREFIX_TOKENS,
            s.max_tokens,
            W.QUESTION_TOKENS,
            s.num_questions,
            n=s.num_questions,
        )
    ]


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    return sampling_jobs(run, stage, run.gen_questions.generators, run.gen_questions, rows_multiple)


STAGE = Stage(
    "gen-questions",
    "sample questions from scratch with each generator",
    run,
    config=GenQuestionsConfig,
    workload=workload,
)
