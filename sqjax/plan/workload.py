"""What each stage of a run config compiles and how often it calls it.

A stage becomes a list of `Job`s: one program (train step, reference pass, insert, decode,
score) of one model with its configured sizes, and the number of calls the stage's workload
makes. Sizes come from the config; the sizes of data the config does not fix are the
assumptions below (the paper's corpora and typical lengths), so a time estimate is only as
good as them: each is named in the plan's JSON.
"""

from __future__ import annotations

import dataclasses
import math

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


def _train(stage, section, model, loss, rows, seq_len, examples, tokens_each, epochs) -> list[Job]:
    t = TrainShape(loss, rows, seq_len, micro_batches(rows, section.accum_steps), section.remat)
    per_row = seq_len if loss == "sft" else 1  # packed SFT rows hold seq_len tokens
    steps = math.ceil(examples * tokens_each / per_row / rows) * epochs
    jobs = [
        Job(stage, model, "train", t, steps, tokens=rows * seq_len * (2 if loss == "dpo" else 1))
    ]
    if loss == "dpo":
        jobs.append(Job(stage, model, "reference", t, steps * t.accum))
    return jobs


def _sample(stage, model, slots, rows_multiple, prompt, max_tokens, mean_out, samples, n, dtype):
    """Insert and decode jobs of `samples` completions, `n` per distinct prompt."""
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


def jobs(run: RunSettings, stage: str, rows_multiple: int) -> list[Job]:
    """The jobs of one stage (an empty list for stages without device programs)."""
    m = run.models

    def dt(ref: str) -> str:
        return m[ref.rpartition(":")[2]].dtype

    def sampler(stg, ref, slots, prompt, max_tokens, mean_out, samples, n=1):
        return _sample(
            stg, ref, slots, rows_multiple, prompt, max_tokens, mean_out, samples, n, dt(ref)
        )

    out: list[Job] = []
    if stage == "qft":
        s = run.qft
        for ref in s.models:
            out += _train(
                stage,
                s,
                ref,
                "sft",
                s.batch_size,
                s.seq_len,
                SEED_QUESTIONS,
                QUESTION_TOKENS + PREFIX_TOKENS,
                s.epochs,
            )
    elif stage == "qpo-sample":
        s = run.qpo_sample
        for ref in run.qft.models:
            out += sampler(
                stage,
                f"qft:{ref}",
                s.batch_size,
                PREFIX_TOKENS,
                s.max_tokens,
                QUESTION_TOKENS,
                s.num_questions,
                n=s.num_questions,
            )
    elif stage == "qpo":
        s = run.qpo
        for ref in run.qft.models:
            out += _train(
                stage,
                s,
                f"qft:{ref}",
                "dpo",
                s.batch_size,
                s.max_len,
                run.qpo_sample.num_questions,
                1,
                s.epochs,
            )
    elif stage == "gen-questions":
        s = run.gen_questions
        for ref in s.generators:
            out += sampler(
                stage,
                ref,
                s.batch_size,
                PREFIX_TOKENS,
                s.max_tokens,
                QUESTION_TOKENS,
                s.num_questions,
                n=s.num_questions,
            )
    elif stage == "difficulty":
        s = run.difficulty
        questions = min(SEED_QUESTIONS, s.max_questions or SEED_QUESTIONS)
        out += sampler(
            stage,
            s.solver,
            s.batch_size,
            ANSWER_PROMPT_TOKENS,
            s.max_tokens,
            RESPONSE_TOKENS,
            questions * s.samples_per_question,
            n=s.samples_per_question,
        )
        t = TrainShape("regression", s.batch_size, s.max_len)
        steps = math.ceil(questions / s.batch_size) * s.epochs
        out.append(
            Job(
                stage,
                f"difficulty:{s.model}",
                "regressor",
                t,
                steps,
                tokens=s.batch_size * s.max_len,
            )
        )
    elif stage == "filter":
        f = run.filter
        generated = run.gen_questions.num_questions * len(run.gen_questions.generators)
        if f.solvability.enabled:
            out += sampler(
                stage,
                f.solvability.judge,
                f.solvability.batch_size,
                JUDGE_PROMPT_TOKENS,
                f.solvability.max_tokens,
                JUDGE_TOKENS,
                generated,
            )
        if f.difficulty.enabled:
            rows = round_up(run.difficulty.batch_size, rows_multiple)
            shape = (rows, run.difficulty.max_len, "reward")
            out.append(Job(stage, f.difficulty.scorer, "score", shape, generated / rows))
    elif stage == "gen-responses":
        s = run.gen_responses
        questions = run.gen_questions.num_questions * len(run.gen_questions.generators)
        questions *= KEPT_AFTER_FILTER
        out += sampler(
            stage,
            s.solver,
            s.batch_size,
            ANSWER_PROMPT_TOKENS,
            s.max_tokens,
            RESPONSE_TOKENS,
            questions * s.n,
            n=s.n,
        )
    elif stage == "reward":
        s = run.reward
        pairs = run.gen_questions.num_questions * len(run.gen_questions.generators)
        pairs *= KEPT_AFTER_FILTER * run.gen_responses.n
        rows = round_up(pow2(s.batch_size), rows_multiple)
        mean_len = ANSWER_PROMPT_TOKENS + RESPONSE_TOKENS
        # one compile at max_len for memory; calls scaled to the mean length (time)
        kind = "reward" if s.mode == "reward_model" else "next"  # judge: P(yes) of an LM
        out.append(
            Job(
                stage,
                s.model,
                "score",
                (rows, s.max_len, kind),
                pairs / rows * mean_len / s.max_len,
            )
        )
    elif stage == "sft":
        s = run.sft
        responses = run.gen_questions.num_questions * len(run.gen_questions.generators)
        responses *= KEPT_AFTER_FILTER
        for item in s.models:
            out += _train(
                stage,
                s,
                item.model,
                "sft",
                s.batch_size,
                s.pack_len,
                responses,
                ANSWER_PROMPT_TOKENS + RESPONSE_TOKENS,
                s.epochs,
            )
    elif stage == "eval":
        s = run.eval
        for ref in s.models:
            out += sampler(
                stage,
                ref,
                s.batch_size,
                ANSWER_PROMPT_TOKENS,
                s.max_tokens,
                RESPONSE_TOKENS,
                EVAL_PROBLEMS,
            )
    return out
