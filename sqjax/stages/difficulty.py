"""Stage difficulty: trains the fail-rate regressor the filter's difficulty step uses.

1. labels (step `solve`): the solver writes `samples_per_question` answers to each seed
   question that has a gold answer (GSM8K/MATH train; `max_questions` of them, a seeded
   subset), graded with sqjax.grading; fail rate = 1 - correct / samples.
2. a fixed hash split holds out ~10% of the questions; the regressor (decoder of `model` +
   scalar head, MSE; sqjax.training.regression) trains on the rest with the trainer every
   training stage uses (train_stage: shardings, checkpoints, resume).
3. metrics: Spearman correlation and MSE of predicted vs held-out fail rates.
Writes `difficulty:<model>` (an HF score-head directory) and, as rows, every labelled
question with its split and prediction.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sqjax.data.prompt_format import BOXED_INSTRUCTION
from sqjax.errors import SqjaxError
from sqjax.grading import grade
from sqjax.pipeline.checks import as_component, positive, sampling_limits
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.models import llm_for
from sqjax.pipeline.stage import Stage
from sqjax.pipeline.training import train_stage
from sqjax.question import difficulty as D
from sqjax.question.sampling import chat_replies
from sqjax.training.config import OptimConfig, micro_batches

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


@dataclass(frozen=True)
class DifficultyConfig:
    """Stage difficulty: trains the fail-rate regressor the filter uses; writes
    `difficulty:<model>`. Labels = 1 - pass rate of `solver`'s samples on the seed questions.
    The paper gives the design (DeepSeekMath-7B-Base + scalar head, MSE), not the settings:
    every number below is an sqjax choice.
    """

    model: str = field(default="", metadata=MODEL)
    solver: str = field(default="", metadata=MODEL)
    samples_per_question: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 2048
    max_questions: int | None = None
    lr: float = 1e-5
    epochs: int = 1
    warmup_ratio: float = 0.03
    batch_size: int = 64
    max_len: int = 512
    shard_size: int = 1_000
    # memory, as in qft (`sqjax plan` checks they fit): without remat the 7B regressor's step
    # needs 72.5 GiB per device data-parallel (64 x 512 tokens)
    remat: Literal["none", "full", "dots"] = "full"
    accum_steps: int = 1

    def __post_init__(self) -> None:
        sampling_limits(self.temperature, self.top_p, self.max_tokens)
        positive(samples_per_question=self.samples_per_question, epochs=self.epochs)
        positive(batch_size=self.batch_size, max_len=self.max_len)
        positive(accum_steps=self.accum_steps)
        positive(shard_size=self.shard_size, max_questions=self.max_questions)
        as_component(OptimConfig, lr=self.lr, warmup_ratio=self.warmup_ratio)


HELDOUT_SHARE = 0.1


def label_shard(ctx: StageContext, rows: list[dict], info: ShardInfo) -> list[dict]:
    """Fail rates of the shard's questions from the solver's graded samples."""
    s = ctx.section
    prompts = [f"{r['question']}\n{BOXED_INSTRUCTION}" for r in rows]
    replies = chat_replies(
        llm_for(ctx, s.solver),
        prompts,
        n=s.samples_per_question,
        temperature=s.temperature,
        top_p=s.top_p,
        max_tokens=s.max_tokens,
        batch_size=s.batch_size,
        seed=info.seed,
    )
    out = []
    for row, samples in zip(rows, replies):
        info.add_tokens(sum(x["num_tokens"] for x in samples))
        graded = [grade(x["text"], row["gold"]) for x in samples]
        correct = [g["correct"] for g in graded]
        out.append(
            {
                "id": row["id"],
                "question": row["question"],
                "gold": row["gold"],
                "source": row.get("source"),
                "answers": [g["answer"] for g in graded],
                "correct": sum(correct),
                "samples": len(correct),
                "fail_rate": D.fail_rate(correct),
            }
        )
    return out


def questions(ctx: StageContext) -> list[dict]:
    seeds = ctx.read_stage("seed-questions")
    rows = [r for r in seeds if r.get("gold")]
    if len(seeds) > len(rows):
        ctx.drop("no_gold_answer", len(seeds) - len(rows))
    if ctx.section.max_questions is not None:
        rows = random.Random(ctx.config.seed).sample(
            rows, min(len(rows), ctx.section.max_questions)
        )
    if len(rows) < 4:
        raise SqjaxError(
            f"difficulty: {len(rows)} seed questions with gold answers; need at least 4"
        )
    return rows


def recipe(s: DifficultyConfig) -> dict[str, Any]:
    """The regressor's trainer settings: MSE of a score head on the decoder of `model`."""
    return {
        "loss": "regression",
        "pack": False,
        "seq_len": s.max_len,
        "batch_size": s.batch_size,
        "accum_steps": s.accum_steps,
        "remat": s.remat,
        "epochs": s.epochs,
        "optim": OptimConfig(lr=s.lr, warmup_ratio=s.warmup_ratio),
    }


def scorer(ctx: StageContext, train_rows: list[dict]) -> Any:
    """The regressor (an LLM handle of `difficulty:<model>`), trained unless this stage
    already published it."""
    s = ctx.section
    rows = [{"text": r["question"], "label": r["fail_rate"]} for r in train_rows]
    train_stage(ctx, s.model, rows, recipe(s))
    return llm_for(ctx, f"difficulty:{s.model}")


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def run(ctx: StageContext) -> None:
    from sqjax.training.regression import predict, text_encoder

    s = ctx.section
    fn = lambda chunk, info: label_shard(ctx, chunk, info)
    labelled = ctx.map_shards(questions(ctx), fn, s.shard_size, step="solve").rows()
    held = D.heldout_ids([r["id"] for r in labelled], HELDOUT_SHARE)
    train_rows = [r for r in labelled if r["id"] not in held] or labelled
    regressor = scorer(ctx, train_rows)
    pred = predict(
        regressor.model,
        text_encoder(regressor.tokenizer),
        [r["question"] for r in labelled],
        batch_size=s.batch_size,
        max_len=s.max_len,
        mesh=regressor.mesh,
    )
    rows = [
        {**r, "split": "heldout" if r["id"] in held else "train", "predicted_fail_rate": float(p)}
        for r, p in zip(labelled, pred)
    ]
    test = [r for r in rows if r["split"] == "heldout"]
    y, p = (
        np.array([r["fail_rate"] for r in test]),
        np.array([r["predicted_fail_rate"] for r in test]),
    )
    ctx.set_metric(
        "heldout",
        {
            "n": len(test),
            "spearman": _finite(D.spearman(p, y)) if len(test) else None,
            "mse": float(np.mean((p - y) ** 2)) if len(test) else None,
            "mean_fail_rate": float(np.mean([r["fail_rate"] for r in rows])),
        },
    )
    ctx.map_shards(rows, lambda chunk, info: chunk, s.shard_size)
    ctx.declare_row_stats("fail_rate", "predicted_fail_rate")


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    """The solver's graded samples, then the regressor's train step."""
    from sqjax.plan import workload as W
    from sqjax.plan.programs import TrainShape

    s = run.difficulty
    questions = min(W.SEED_QUESTIONS, s.max_questions or W.SEED_QUESTIONS)
    n = s.samples_per_question
    jobs = W.answer_jobs(
        run, stage, s.solver, s.batch_size, rows_multiple, s.max_tokens, questions, n
    )
    accum = micro_batches(s.batch_size, s.accum_steps)
    shape = TrainShape("regression", s.batch_size, s.max_len, accum, s.remat)
    steps = math.ceil(questions / s.batch_size) * s.epochs
    tokens = s.batch_size * s.max_len
    return [*jobs, W.Job(stage, f"difficulty:{s.model}", "regressor", shape, steps, tokens=tokens)]


STAGE = Stage(
    "difficulty",
    "train the fail-rate regressor used by the difficulty filter",
    run,
    config=DifficultyConfig,
    inputs=("seed-questions",),
    workload=workload,
)
