"""What each stage of a run config compiles and how often it calls it.

A stage becomes a list of `Job`s: one program (train step, reference pass, insert, decode,
score) of one model with its configured sizes, and the number of calls the stage's workload
makes. Each stage declares its own workload next to its run function (`Stage.workload`, built
from `train_jobs`, `sample_jobs` and `answer_jobs` here); `jobs` asks the config's registry.
Sizes come from the config; the sizes of data the config does not fix are the assumptions
below (the paper's corpora and typical lengths), so a time estimate is only as good as them:
each is named in the plan's JSON.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sqjax.pipeline.config import RunSettings
from sqjax.plan.programs import SampleShape, TrainShape
from sqjax.sampling.engine import SPAN, bucket, pow2, round_up
from sqjax.training.config import micro_batches

# assumptions (tokens are means unless named max)
SEED_QUESTIONS = 14_973  # GSM8K train 7,473 + MATH train 7,500 (the paper's seed set)
QUESTION_TOKENS = 100  # a generated or seed math question
PREFIX_TOKENS = 24  # the pre-query prefix question generation starts from
ANSWER_PROMPT_TOKENS = 160  # chat template + question + boxed instruction
JUDGE_PROMPT_TOKENS = 420  # the solvability prompt with its question
RESPONSE_TOKENS = 450  # a chain-of-thought answer
JUDGE_TOKENS = 350  # the judge's reasoning and verdict
KEPT_AFTER_FILTER = 0.5  # share of generated questions the filter keeps (paper: 2M -> 1M)
EVAL_PROBLEMS = 10_000  # the benchmarks' problems (GSM8K 1,319 + MATH 5,000 + others)
ASSUMPTIONS = {k: v for k, v in globals().items() if k.isupper() and isinstance(v, (int, float))}


@dataclasses.dataclass(frozen=True)
class Job:
    stage: str
    model: str  # the config's model reference
    kind: str  # train, reference, regressor, insert, decode, score
    shape: TrainShape | SampleShape | tuple
    calls: float  # calls of the program over the stage's workload
    span: int = 0  # decode: the cache slots attended
    mean_span: int = 0  # decode: the mean slots attended over the workload (for time)
    tokens: float = 0.0  # train: tokens per step (for FLOPs per token)

    @property
    def key(self) -> tuple:
        """Jobs with equal keys are the same program (compiled once)."""
        shape = self.shape
        if self.kind == "decode":  # decode does not see the prompts
            shape = dataclasses.replace(shape, prompt_len=0, unique=0)
        return (self.model.rpartition(":")[2], self.kind, shape, self.span)


def train_jobs(
    stage: str,
    section: Any,
    model: str,
    loss: str,
    rows: int,
    seq_len: int,
    examples: float,
    tokens_each: int,
    epochs: int,
) -> list[Job]:
    """The train step (and, for DPO, the reference pass) of one model: `examples` of
    `tokens_each` tokens for `epochs`, `rows` per step (SFT rows packed to seq_len)."""
    t = TrainShape(loss, rows, seq_len, micro_batches(rows, section.accum_steps), section.remat)
    per_row = seq_len if loss == "sft" else 1  # packed SFT rows hold seq_len tokens
    steps = math.ceil(examples * tokens_each / per_row / rows) * epochs
    jobs = [
        Job(stage, model, "train", t, steps, tokens=rows * seq_len * (2 if loss == "dpo" else 1))
    ]
    if loss == "dpo":
        jobs.append(Job(stage, model, "reference", t, steps * t.accum))
    return jobs


def sample_jobs(
    run: RunSettings,
    stage: str,
    model: str,
    slots: int,
    rows_multiple: int,
    prompt: int,
    max_tokens: int,
    mean_out: int,
    samples: float,
    n: int = 1,
) -> list[Job]:
    """Insert and decode jobs of `samples` completions of `model`, `n` per distinct prompt,
    `slots` rows (rounded up to the mesh's rows_multiple)."""
    dtype = run.models[model.rpartition(":")[2]].dtype
    B = round_up(slots, rows_multiple)
    cache = bucket(prompt + max_tokens)
    U = min(B, round_up(pow2(max(1, B // n)), rows_multiple))  # as Engine._insert
    s = SampleShape(B, cache, prompt, U, dtype=dtype)
    steps = samples * mean_out / B
    mean_span = min(cache, round_up(prompt + mean_out // 2 + s.chunk, SPAN))
    return [
        Job(stage, model, "insert", s, math.ceil(samples / n / U)),
        Job(stage, model, "decode", s, steps / s.chunk, span=cache, mean_span=mean_span),
    ]


def answer_jobs(
    run: RunSettings,
    stage: str,
    model: str,
    slots: int,
    rows_multiple: int,
    max_tokens: int,
    questions: float,
    n: int = 1,
) -> list[Job]:
    """sample_jobs of `n` chain-of-thought answers to each of `questions` (answering prompts
    and responses of the assumed mean lengths)."""
    prompt, out = ANSWER_PROMPT_TOKENS, RESPONSE_TOKENS
    args = (slots, rows_multiple, prompt, max_tokens, out, questions * n)
    return sample_jobs(run, stage, model, *args, n=n)


def jobs(run: RunSettings, stage: str, rows_multiple: int) -> list[Job]:
    """The jobs of one stage (an empty list for stages without device programs)."""
    workload = run.stages.get(stage).workload
    return workload(run, stage, rows_multiple) if workload else []
