"""Sharded question generation from the pre-query prefix (stages qpo-sample, gen-questions).

The work list holds one item per question to write, `{"generator": ref, "i": i}`, generators
one after another; a shard samples its items generator by generator with seeds derived from
`info.seed`, so a rerun of a shard writes the same questions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sqjax.pipeline.checks import positive, sampling_limits
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.models import llm_for
from sqjax.pipeline.records import question_row, record_id
from sqjax.question.sampling import sample_questions


@dataclass(frozen=True)
class QuestionSampling:
    """Sampling questions from the bare pre-query prefix (stages qpo-sample, gen-questions)."""

    num_questions: int = 10_000  # per model
    temperature: float = 1.0
    top_p: float = 0.99
    max_tokens: int = 512  # paper; the authors' code used 1024
    shard_size: int = 1_000
    batch_size: int = 256

    def __post_init__(self) -> None:
        sampling_limits(self.temperature, self.top_p, self.max_tokens)
        positive(num_questions=self.num_questions, shard_size=self.shard_size)
        positive(batch_size=self.batch_size)


def work_items(generators: list[str], count: int) -> list[dict]:
    """`count` items per generator, in generator order."""
    return [{"generator": g, "i": i} for g in generators for i in range(count)]


def sample_from(
    ctx: StageContext, model_ref: str, count: int, qs: QuestionSampling, seed: int
) -> list[dict]:
    """`count` questions from `model_ref`'s pre-query prefix with the sampling settings `qs`."""
    return sample_questions(
        llm_for(ctx, model_ref),
        count,
        temperature=qs.temperature,
        top_p=qs.top_p,
        max_tokens=qs.max_tokens,
        batch_size=qs.batch_size,
        seed=seed,
    )


def sample_shard(
    ctx: StageContext, rows: list[dict], info: ShardInfo, qs: QuestionSampling
) -> list[dict]:
    """Question rows for the shard's items: id, question, generator, finish_reason, tokens."""
    out = []
    groups = itertools.groupby(rows, key=lambda r: r["generator"])
    for k, (generator, group) in enumerate(groups):
        items = list(group)
        samples = sample_from(ctx, generator, len(items), qs, info.seed + k)
        for item, s in zip(items, samples):
            info.add_tokens(s["num_tokens"])
            qid = record_id("q", ctx.name, generator, item["i"])
            out.append(
                question_row(
                    s["question"],
                    generator,
                    qid,
                    finish_reason=s["finish_reason"],
                    num_tokens=s["num_tokens"],
                )
            )
    return out


def generate_questions(ctx: StageContext, generators: list[str], qs: QuestionSampling) -> None:
    """Writes the stage output: `qs.num_questions` questions per generator, in shards."""
    items = work_items(generators, qs.num_questions)
    fn = lambda rows, info: sample_shard(ctx, rows, info, qs)
    ctx.map_shards(items, fn, qs.shard_size)
    ctx.declare_row_stats("num_tokens")
