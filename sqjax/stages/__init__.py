"""The pipeline's stages, in order: each module declares its `STAGE` (sqjax.pipeline.stage).

Adding a stage: write its module (settings dataclass, `run(ctx)`, `STAGE`) and put it in
`STAGES` below. The difficulty scorer is trained in its own stage, before `filter`, which
applies it.
"""

from __future__ import annotations

from sqjax.pipeline.stage import Registry
from sqjax.stages import (
    difficulty,
    eval,
    filter,
    gen_questions,
    gen_responses,
    qft,
    qpo,
    qpo_pairs,
    qpo_rewrite,
    qpo_sample,
    rate_questions,
    reward,
    seed_questions,
    sft,
)

STAGES = Registry(
    m.STAGE
    for m in (
        seed_questions,
        qft,
        qpo_sample,
        qpo_rewrite,
        qpo_pairs,
        qpo,
        gen_questions,
        difficulty,
        filter,
        rate_questions,
        gen_responses,
        reward,
        sft,
        eval,
    )
)
