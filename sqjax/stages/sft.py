"""Stage sft: fine-tune each base model on the selected (query, response) pairs.

The prompt is `template` (default DART-Math's `alpaca`, as the paper) with `instruction`
appended to each query; eval uses the same for `sft:<m>` models. Every model's tokenizer is
checked against the template before the first one trains. Optionally `extra_data` JSONL
files of {query, response} are mixed in and `max_rows` rows drawn with `subsample_seed`
(the paper's Table 11 compares 400K-row subsets); the manifest's `data` says what went in.

The paper's final SFT: the chat [user: query, assistant: response], loss on the response and
its end-of-turn token only (`loss: response`; `all` puts every token in the loss), examples
packed into rows of `pack_len` tokens, warmup then cosine. Training is `sqjax.training`'s
`train(cfg)` with Orbax checkpoints under RUN/sft/train/<model>/, so a killed run resumes from
its last save; the exported HF directory (weights + tokenizer) becomes RUN/sft/artifacts/<model>,
which `sft:<model>` names in later stages (eval). Training and publishing go through
sqjax.pipeline.training.train_stage, as in qft, qpo and difficulty. The stage's rows: one per
model, naming its checkpoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqjax.data.prompt_format import (
    DART_MATH_TEMPLATE,
    check_template,
    query_text,
    with_template,
)
from sqjax.errors import SqjaxError
from sqjax.pipeline.checks import as_component, positive
from sqjax.pipeline.config import MODEL
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.stage import Stage
from sqjax.pipeline.training import artifact_dir, section_recipe, train_stage
from sqjax.stages.gen_questions import generated
from sqjax.training.config import OptimConfig

if TYPE_CHECKING:  # plan (and JAX) load when a workload is asked for
    from sqjax.plan.workload import Job


@dataclass(frozen=True)
class SftModel:
    """One base model to fine-tune and its learning rate."""

    model: str = field(default="", metadata=MODEL)
    lr: float = 1e-5

    def __post_init__(self) -> None:
        as_component(OptimConfig, lr=self.lr)


@dataclass(frozen=True)
class SftConfig:
    """Stage sft: each base model on the (query, response) pairs; writes `sft:<model>`."""

    models: list[SftModel] = field(default_factory=list)
    # The prompt of the final SFT, and of evaluating its models (`sft:<m>`), so training and
    # evaluation see the same one: the paper follows DART-Math, whose `alpaca` template wraps
    # the bare query; `model` = the tokenizer's own template. `instruction` is appended to
    # each query (after a newline) in both; DART-Math adds none.
    template: str = DART_MATH_TEMPLATE
    instruction: str = ""
    # Table 11 compares fixed-size subsets: train on `max_rows` rows drawn with
    # `subsample_seed` (None = all); `extra_data` mixes in JSONL files of {query, response}
    # (e.g. DART-Math's data) before subsampling. sqjax options, off by default.
    max_rows: int | None = None
    subsample_seed: int = 0
    extra_data: list[str] = field(default_factory=list)
    epochs: int = 3
    warmup_ratio: float = 0.03  # then cosine
    pack_len: int = 4096
    batch_size: int = 64
    loss: Literal["response", "all"] = "response"
    max_steps: int | None = None
    remat: Literal["none", "full", "dots"] = "full"  # as in QftConfig
    accum_steps: int = 8  # 8 rows of pack_len per micro-batch

    def __post_init__(self) -> None:
        positive(epochs=self.epochs, pack_len=self.pack_len, batch_size=self.batch_size)
        positive(max_steps=self.max_steps, max_rows=self.max_rows)
        check_template(self.template, "template")
        positive(accum_steps=self.accum_steps)
        as_component(OptimConfig, warmup_ratio=self.warmup_ratio)


SFT_MODES = {"response": "completion", "all": "full"}  # SftConfig.loss -> trainer sft_mode


def training_rows(rows: list[dict], instruction: str = "") -> list[dict]:
    """The reward stage's selected rows as trainer `chat` rows (query, response)."""
    return [
        {"query": query_text(r["question"], instruction), "response": r["response"]} for r in rows
    ]


def subsample(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """`n` rows drawn without replacement with `seed`, in their original order (all when n is
    None or not smaller than the rows)."""
    if n is None or n >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def mixed_rows(ctx: StageContext) -> list[dict]:
    """Reward rows plus `extra_data` rows, subsampled; the counts go to the manifest."""
    s = ctx.section
    rows = training_rows(ctx.read_stage("reward"), s.instruction)
    counts = {"reward": len(rows)}
    for path in s.extra_data:
        extra = ctx.read_input(path, required=("query", "response"))
        rows += [
            {"query": query_text(r["query"], s.instruction), "response": r["response"]}
            for r in extra
        ]
        counts[path] = len(extra)
    kept = subsample(rows, s.max_rows, s.subsample_seed)
    if s.max_rows is not None and s.max_rows > len(rows):
        ctx.log.warning("sft.max_rows=%d but only %d rows; training on all", s.max_rows, len(rows))
    ctx.set_metric("data", {"rows": counts, "kept": len(kept), "max_rows": s.max_rows})
    return kept


def check_templates(ctx: StageContext) -> None:
    """Every base model's tokenizer takes the configured template (before any training)."""
    from sqjax.checkpoints.api import load_tokenizer
    from sqjax.data.chat import chat_format

    for item in ctx.section.models:
        tokenizer = load_tokenizer(ctx.model_entry(item.model).path)
        chat_format(with_template(tokenizer, ctx.section.template))


def recipe(s: SftConfig, item: SftModel) -> dict[str, Any]:
    """The trainer settings of one base model (see the module docstring)."""
    return section_recipe(
        s,
        loss="sft",
        data_format="chat",
        sft_mode=SFT_MODES[s.loss],
        pack=True,
        seq_len=s.pack_len,
        optim=OptimConfig(lr=item.lr, warmup_ratio=s.warmup_ratio),
    )


def train_one(ctx: StageContext, item: SftModel, rows: list[dict]) -> None:
    """Trains one base model (resuming its checkpoints) and publishes `sft:<model>`; its
    tokenizer gets the configured chat template."""
    template = ctx.section.template
    train_stage(
        ctx,
        item.model,
        rows,
        recipe(ctx.section, item),
        adapt_tokenizer=lambda tokenizer: with_template(tokenizer, template),
        extra={"lr": item.lr, "rows": len(rows)},
    )


def run(ctx: StageContext) -> None:
    s = ctx.section
    if not s.models:
        raise SqjaxError(
            "sft.models is empty; list the base models to fine-tune, e.g. "
            "models: [{model: smol, lr: 1.0e-5}]"
        )
    check_templates(ctx)
    rows = mixed_rows(ctx)
    if not rows:
        raise SqjaxError("the reward stage kept no (query, response) rows; nothing to train on")
    for item in s.models:
        train_one(ctx, item, rows)
    published = [
        {
            "model": item.model,
            "checkpoint": f"sft:{item.model}",
            "path": str(artifact_dir(ctx, item.model)),
        }
        for item in s.models
    ]
    ctx.map_shards(published, lambda chunk, info: chunk, len(published))


def workload(run: Any, stage: str, rows_multiple: int) -> list[Job]:
    """One SFT train step per base model, over the selected (question, response) pairs."""
    from sqjax.plan import workload as W

    s = run.sft
    responses = generated(run) * W.KEPT_AFTER_FILTER
    tokens = W.ANSWER_PROMPT_TOKENS + W.RESPONSE_TOKENS
    return [
        job
        for item in s.models
        for job in W.train_jobs(
            stage, s, item.model, "sft", s.batch_size, s.pack_len, responses, tokens, s.epochs
        )
    ]


STAGE = Stage(
    "sft",
    "fine-tune base models on the (query, response) pairs",
    run,
    config=SftConfig,
    inputs=("reward",),
    workload=workload,
)
