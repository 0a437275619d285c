"""Stage qpo-pairs: DPO pairs from the rewrites: chosen = the optimizer's rewrite, rejected =
the original question, both completing the same pre-query prefix of the model that wrote the
original (`model` = the QFT model's config name). A pair is dropped when the rewrite equals
the original after normalisation (`identical`, it teaches nothing) or, with `ascii_only`,
when the rewrite breaks the filter stage's language rule (`chosen_<reason>`). `max_pairs`
caps the pairs per model (first ones in order)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqjax.data.dedup import normalize_text
from sqjax.pipeline.checks import positive
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.records import record_id
from sqjax.pipeline.stage import Stage
from sqjax.question.language import language_reason


@dataclass(frozen=True)
class QpoPairsConfig:
    """Stage qpo-pairs: DPO pairs (chosen = rewrite, rejected = original, prompt = prefix)."""

    # Neither is in the paper (off here, on in configs/plus.yaml): a rewrite equal to its
    # original teaches nothing; ascii_only applies the filter stage's language rule.
    drop_identical: bool = False
    ascii_only: bool = False
    max_pairs: int | None = None

    def __post_init__(self) -> None:
        positive(max_pairs=self.max_pairs)


SHARD_SIZE = 10_000


def pair_reason(row: dict, drop_identical: bool, ascii_only: bool) -> str | None:
    """Why this rewrite makes no pair, or None."""
    if drop_identical and normalize_text(row["rewrite"]) == normalize_text(row["question"]):
        return "identical"
    if ascii_only and (reason := language_reason(row["rewrite"])) is not None:
        return f"chosen_{reason}"
    return None


def make_pair(row: dict) -> dict:
    model = row["generator"].rpartition(":")[2]
    return {
        "id": record_id("pair", row["id"]),
        "question_id": row["id"],
        "model": model,
        "generator": row["generator"],
        "goal": row["goal"],
        "chosen": row["rewrite"],
        "rejected": row["question"],
    }


def pairs_shard(ctx: StageContext, rows: list[dict], info: ShardInfo) -> list[dict]:
    s = ctx.section
    out = []
    for row in rows:
        reason = pair_reason(row, s.drop_identical, s.ascii_only)
        if reason is None:
            out.append(make_pair(row))
        else:
            info.drop(reason)
    return out


def cap_per_model(pairs: list[dict], max_pairs: int | None) -> tuple[list[dict], int]:
    """The first `max_pairs` pairs of each model, and how many were cut."""
    if max_pairs is None:
        return pairs, 0
    seen: Counter[str] = Counter()
    kept = []
    for p in pairs:
        seen[p["model"]] += 1
        if seen[p["model"]] <= max_pairs:
            kept.append(p)
    return kept, len(pairs) - len(kept)


def run(ctx: StageContext) -> None:
    rows = ctx.read_stage("qpo-rewrite")
    fn = lambda chunk, info: pairs_shard(ctx, chunk, info)
    pairs = ctx.map_shards(rows, fn, SHARD_SIZE, step="pairs").rows()
    kept, cut = cap_per_model(pairs, ctx.section.max_pairs)
    if cut:
        ctx.drop("max_pairs", cut)
    ctx.map_shards(kept, lambda chunk, info: chunk, SHARD_SIZE)
    for model, n in sorted(Counter(p["model"] for p in kept).items()):
        ctx.set_metric(f"pairs/{model}", n)


STAGE = Stage(
    "qpo-pairs",
    "build DPO pairs: chosen = rewrite, rejected = original",
    run,
    config=QpoPairsConfig,
    inputs=("qpo-rewrite",),
)
