"""Stage gen-responses: the solver writes `n` chain-of-thought answers per filtered question.

The user turn is the question, a newline and `section.instruction` (the paper's "reason step
by step ... \\boxed{}"); sampling follows the paper (temperature 0.7, top-p 0.95, 2048
tokens). Samples without a final answer (`sqjax.grading.extract_answer` is None) are dropped
and counted (`no_final_answer`) unless `drop_no_answer` is false. Each prompt's sampling seed
is the shard's seed plus the question's position in the shard, so a rerun shard is identical.
A question whose prompt plus `max_tokens` does not fit the solver's context
(max_position_embeddings) is recorded as a failed row (reason `prompt_too_long`, with its id and
sizes) and the shard goes on without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqjax.answer.evaluation import prompt_ids
from sqjax.data.chat import chat_format
from sqjax.data.prompt_format import BOXED_INSTRUCTION
from sqjax.grading import extract_answer
from sqjax.pipeline.checks import positive, sampling_limits
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import ShardInfo, StageContext
from sqjax.pipeline.models import llm_for
from sqjax.pipeline.records import response_row
from sqjax.pipeline.stage import Stage
from sqjax.stages.gen_questions import generated

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


@dataclass(frozen=True)
class GenResponsesConfig:
    """Stage gen-responses: `n` chain-of-thought answers per question from the solver."""

    solver: str = field(default="", metadata=MODEL)
    n: int = 5
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 2048
    instruction: str = BOXED_INSTRUCTION  # appended to the question in the user turn
    drop_no_answer: bool = True  # drop samples with no final answer
    shard_size: int = 2_000
    batch_size: int = 256

    def __post_init__(self) -> None:
        sampling_limits(self.temperature, self.top_p, self.max_tokens)
        positive(n=self.n, shard_size=self.shard_size, batch_size=self.batch_size)


SEED_MOD = 2**32  # the sampler uses seeds modulo 2**32


def sampling_params(section: GenResponsesConfig, stop_ids: list[int], seed: int) -> Any:
    """The paper's sampling settings for one question, seeded."""
    from sqjax.sampling.api import SamplingParams

    return SamplingParams(
        n=section.n,
        temperature=section.temperature,
        top_p=section.top_p,
        max_tokens=section.max_tokens,
        stop_token_ids=stop_ids,
        seed=seed % SEED_MOD,
    )


def fitting(
    rows: list[dict], prompts: list[list[int]], max_tokens: int, limit: int, info: ShardInfo
) -> list[int]:
    """Positions of the rows whose prompt + max_tokens fits `limit` positions; the others are
    recorded as failed rows (`prompt_too_long`)."""
    keep = []
    for i, (row, prompt) in enumerate(zip(rows, prompts, strict=True)):
        need = len(prompt) + max_tokens
        if need <= limit:
            keep.append(i)
            continue
        detail = (
            f"prompt {len(prompt)} + max_tokens {max_tokens} = {need} tokens exceeds the "
            f"solver's max_position_embeddings={limit}"
        )
        info.fail(row.get("id", info.start + i), "prompt_too_long", detail)
    return keep


def answer_shard(ctx: StageContext, rows: list[dict], info: ShardInfo) -> list[dict]:
    """n sampled answers for each question row of one shard, as response rows."""
    s = ctx.section
    llm = llm_for(ctx, s.solver)
    tokenizer = llm.tokenizer
    prompts = prompt_ids(tokenizer, [r["question"] for r in rows], s.instruction)
    keep = fitting(rows, prompts, s.max_tokens, llm.config.max_position_embeddings, info)
    if not keep:
        return []
    stops = list(chat_format(tokenizer).stop_ids)
    params = [sampling_params(s, stops, info.seed + i) for i in keep]  # seeds by position
    completions = llm.generate([prompts[i] for i in keep], params, max_batch=s.batch_size)
    out = []
    for question, completion in zip([rows[i] for i in keep], completions, strict=True):
        for sample in completion.outputs:
            info.add_tokens(len(sample.token_ids))
            answer = extract_answer(sample.text)
            if answer is None and s.drop_no_answer:
                info.drop("no_final_answer")
                continue
            out.append(
                response_row(
                    question,
                    sample.text.strip(),
                    s.solver,
                    sample.index,
                    answer=answer,
                    num_tokens=len(sample.token_ids),
                    finish_reason=sample.finish_reason,
                )
            )
    return out


def run(ctx: StageContext) -> None:
    questions = ctx.read_stage("filter")
    ctx.log.info(
        "%d questions x %d answers from %s", len(questions), ctx.section.n, ctx.section.solver
    )
    ctx.map_shards(
        questions,
        lambda rows, info: answer_shard(ctx, rows, info),
        ctx.section.shard_size,
        desc="gen-responses",
    )
    ctx.declare_row_stats("num_tokens")


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    """`n` answers to each question the filter keeps."""
    from sqjax.plan import workload as W

    s = run.gen_responses
    questions = generated(run) * W.KEPT_AFTER_FILTER
    return W.answer_jobs(
        run, stage, s.solver, s.batch_size, rows_multiple, s.max_tokens, questions, s.n
    )


STAGE = Stage(
    "gen-responses",
    "write several chain-of-thought answers per question",
    run,
    config=GenResponsesConfig,
    inputs=("filter",),
    workload=workload,
)
