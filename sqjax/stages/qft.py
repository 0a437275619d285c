"""Stage qft: question fine-tuning. Each solver is trained on the bare seed questions so that,
given only the pre-query prefix, it writes a question and ends the user turn.

Training text = the model's own pre-query prefix + question + end-of-turn token (ChatFormat
from its chat template), packed into rows of `seq_len` tokens. `loss: all` (the authors'
code) puts the loss on every token, prefix included; `loss: question` on the question and
end-of-turn only. Writes `qft:<model>` as an HF directory. Before and after, a small sample of
questions from the prefix is judged (sqjax.question.probe): the share judged a math problem
is the method's first measurable effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqjax.pipeline.checks import as_component, positive, require
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.stage import Stage
from sqjax.pipeline.training import section_recipe, train_stage
from sqjax.question.probe import PROBE_SETTINGS, probe
from sqjax.training.config import OptimConfig

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


@dataclass(frozen=True)
class QftConfig:
    """Stage qft: SFT of each solver on bare questions; writes checkpoint `qft:<model>`."""

    models: list[str] = field(default_factory=list, metadata=MODEL)
    lr: float = 2e-5  # authors' code default
    epochs: int = 1
    warmup_ratio: float = 0.03  # cosine schedule
    seq_len: int = 256  # packed rows
    batch_size: int = 32
    loss: Literal["all", "question"] = "all"  # authors' code: loss on every token
    max_steps: int | None = None  # cap for smoke runs; None = full epochs
    # memory (sqjax choices; `sqjax plan` checks they fit): recompute each block's
    # activations in the backward pass, and split each step into accum_steps micro-batches
    # (at most: see micro_batches)
    remat: Literal["none", "full", "dots"] = "full"
    accum_steps: int = 1
    # questions sampled and judged before and after QFT (share judged a math problem, and
    # solvable); 0 = skip. Sampling: qpo_sample settings; judge: filter.solvability. sqjax choice
    probe_questions: int = 200
    base_probe_questions: int | None = None  # the untuned model's probe; None: probe_questions

    def __post_init__(self) -> None:
        positive(epochs=self.epochs, seq_len=self.seq_len, batch_size=self.batch_size)
        positive(max_steps=self.max_steps)
        positive(accum_steps=self.accum_steps)
        require(self.probe_questions >= 0, f"probe_questions={self.probe_questions} must be >= 0")
        base = self.base_probe_questions
        require(base is None or base >= 0, f"base_probe_questions={base} must be >= 0")
        as_component(OptimConfig, lr=self.lr, warmup_ratio=self.warmup_ratio)


SFT_MODE = {"all": "full", "question": "completion"}  # QftConfig.loss -> trainer sft_mode


def qft_examples(rows: list[dict], tokenizer: Any, loss: str) -> list:
    """The examples the trainer builds from our rows (prefix + question + end-of-turn, masked
    per `loss`): what the tests check token by token."""
    from sqjax.training.inputs import sft_examples

    return sft_examples(rows, tokenizer, "qft", SFT_MODE[loss])


def recipe(s: QftConfig) -> dict[str, Any]:
    """QFT's trainer settings (see the module docstring)."""
    return section_recipe(
        s,
        loss="sft",
        data_format="qft",
        sft_mode=SFT_MODE[s.loss],
        pack=True,
        seq_len=s.seq_len,
        optim=OptimConfig(lr=s.lr, warmup_ratio=s.warmup_ratio),
    )


def run(ctx: StageContext) -> None:
    rows = [{"id": r["id"], "question": r["question"]} for r in ctx.read_stage("seed-questions")]
    s = ctx.section
    base = s.probe_questions if s.base_probe_questions is None else s.base_probe_questions
    for model in s.models:
        probe(ctx, model, base)
        train_stage(ctx, model, rows, recipe(s))
        probe(ctx, f"qft:{model}", s.probe_questions)


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    """One SFT train step per model, over the seed questions (prefix + question tokens)."""
    from sqjax.plan import workload as W

    s = run.qft
    tokens = W.QUESTION_TOKENS + W.PREFIX_TOKENS
    return [
        job
        for ref in s.models
        for job in W.train_jobs(
            stage, s, ref, "sft", s.batch_size, s.seq_len, W.SEED_QUESTIONS, tokens, s.epochs
        )
    ]


STAGE = Stage(
    "qft",
    "question fine-tuning: teach each solver to write questions",
    run,
    config=QftConfig,
    inputs=("seed-questions",),
    config_deps=PROBE_SETTINGS,
    workload=workload,
)
