"""Stage qpo: question preference optimization. Each QFT model is trained with sigmoid DPO
(beta 0.1, no SFT term) on its pairs: chosen = optimizer rewrite, rejected = original, both
completing the pre-query prefix; the loss covers question tokens + end-of-turn only
(sqjax.training.inputs.dpo_examples). The reference is the frozen QFT model: the trainer
computes its log-probabilities in one pass before the first step and keeps them in
RUN/qpo/train/<model>/reference_logps.npy. Writes `qpo:<model>`; judged samples before and
after (sqjax.question.probe) show the change in math and solvable shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqjax.errors import SqjaxError
from sqjax.pipeline.checks import as_component, positive, require
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.stage import Stage
from sqjax.pipeline.training import section_recipe, train_stage
from sqjax.question.probe import PROBE_SETTINGS, probe, reuse_probe
from sqjax.training.config import DPOConfig, OptimConfig

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


@dataclass(frozen=True)
class QpoConfig:
    """Stage qpo: sigmoid DPO of each QFT model; reference = frozen QFT model."""

    beta: float = 0.1
    lr: float = 5e-7
    warmup_steps: int = 20  # then cosine
    batch_size: int = 128
    epochs: int = 1
    max_len: int = 1024
    max_steps: int | None = None
    probe_questions: int = 200  # judged sample before/after QPO, as in QftConfig; 0 = skip
    remat: Literal["none", "full", "dots"] = "full"  # as in QftConfig
    accum_steps: int = 4  # 32 pairs (64 rows of max_len) per micro-batch

    def __post_init__(self) -> None:
        as_component(DPOConfig, variant="sigmoid", beta=self.beta)
        as_component(OptimConfig, lr=self.lr, warmup_steps=self.warmup_steps)
        positive(batch_size=self.batch_size, epochs=self.epochs, max_len=self.max_len)
        positive(max_steps=self.max_steps)
        positive(accum_steps=self.accum_steps)
        require(self.probe_questions >= 0, f"probe_questions={self.probe_questions} must be >= 0")


def recipe(s: QpoConfig, batch_size: int) -> dict[str, Any]:
    """QPO's trainer settings: sigmoid DPO of `batch_size` pairs a step (see the module
    docstring)."""
    return section_recipe(
        s,
        loss="dpo",
        pack=False,
        seq_len=s.max_len,
        batch_size=batch_size,
        optim=OptimConfig(lr=s.lr, warmup_steps=s.warmup_steps),
        dpo=DPOConfig(variant="sigmoid", beta=s.beta),
    )


def run(ctx: StageContext) -> None:
    pairs = ctx.read_stage("qpo-pairs")
    s = ctx.section
    for model in ctx.config.qft.models:
        mine = [
            {"chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs if p["model"] == model
        ]
        if not mine:
            raise SqjaxError(
                f"qpo: model {model!r} has no DPO pairs (see qpo-rewrite's drops); sample more "
                "questions (qpo_sample.num_questions) or use a stronger rewriter"
            )
        batch = min(s.batch_size, len(mine))
        if batch < s.batch_size:
            ctx.log.warning(
                "qpo: model %r has %d pairs, fewer than qpo.batch_size=%d; training with "
                "batches of %d",
                model,
                len(mine),
                s.batch_size,
                batch,
            )
        if not reuse_probe(ctx, "qft", f"qft:{model}", s.probe_questions):
            probe(ctx, f"qft:{model}", s.probe_questions)
        train_stage(ctx, f"qft:{model}", mine, recipe(s, batch), extra={"pairs": len(mine)})
        probe(ctx, f"qpo:{model}", s.probe_questions)


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    """A DPO step and reference pass per QFT model, one pair per sampled question."""
    from sqjax.plan import workload as W

    s = run.qpo
    pairs = run.qpo_sample.num_questions
    return [
        job
        for ref in run.qft.models
        for job in W.train_jobs(
            stage, s, f"qft:{ref}", "dpo", s.batch_size, s.max_len, pairs, 1, s.epochs
        )
    ]


STAGE = Stage(
    "qpo",
    "question preference optimization (DPO) of each QFT model",
    run,
    config=QpoConfig,
    inputs=("qpo-pairs", "qft"),
    config_deps=("qft.models", *PROBE_SETTINGS),
    workload=workload,
)
