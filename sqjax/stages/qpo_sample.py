"""Stage qpo-sample: questions from each QFT model's bare pre-query prefix (paper: 10K per
model), the raw material the optimizer rewrites for QPO. Settings as question generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqjax.pipeline.context import StageContext
from sqjax.pipeline.stage import Stage
from sqjax.question.generation import QuestionSampling, generate_questions
from sqjax.stages.gen_questions import sampling_jobs

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


@dataclass(frozen=True)
class QpoSampleConfig(QuestionSampling):
    """Stage qpo-sample: 10K questions from each QFT model (`qft:<m>` for m in qft.models)."""


def run(ctx: StageContext) -> None:
    generators = [f"qft:{m}" for m in ctx.config.qft.models]
    generate_questions(ctx, generators, ctx.section)


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    refs = [f"qft:{m}" for m in run.qft.models]
    return sampling_jobs(run, stage, refs, run.qpo_sample, rows_multiple)


STAGE = Stage(
    "qpo-sample",
    "sample questions from each QFT model for QPO",
    run,
    config=QpoSampleConfig,
    inputs=("qft",),
    config_deps=("qft.models",),
    workload=workload,
)
