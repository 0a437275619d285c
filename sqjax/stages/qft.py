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

from typing import Any

from sqjax.pipeline import sections as S
from sqjax.pipeline.context import StageContext
from sqjax.pipeline.models import load_for_training
from sqjax.pipeline.stage import Stage
from sqjax.question import training as tr
from sqjax.question.probe import PROBE_SETTINGS, probe
from sqjax.training.config import micro_batches

SFT_MODE = {"all": "full", "question": "completion"}  # QftConfig.loss -> trainer sft_mode


def qft_examples(rows: list[dict], tokenizer: Any, loss: str) -> list:
    """The examples the trainer builds from our rows (prefix + question + end-of-turn, masked
    per `loss`): what the tests check token by token."""
    from sqjax.training.inputs import sft_examples

    return sft_examples(rows, tokenizer, "qft", SFT_MODE[loss])


def train_config(ctx: StageContext, model: str, data: str) -> Any:
    from sqjax.training.config import OptimConfig, TrainConfig

    s = ctx.section
    policy, tokenizer, compute = load_for_training(ctx, model)
    return TrainConfig(
        model=policy,
        tokenizer=tokenizer,
        data=(data,),
        output_dir=str(ctx.stage_dir / "train" / model),
        loss="sft",
        data_format="qft",
        sft_mode=SFT_MODE[s.loss],
        pack=True,
        seq_len=s.seq_len,
        batch_size=s.batch_size,
        accum_steps=micro_batches(s.batch_size, s.accum_steps),
        remat=s.remat,
        epochs=s.epochs,
        max_steps=s.max_steps,
        optim=OptimConfig(lr=s.lr, warmup_ratio=s.warmup_ratio),
        compute_dtype=compute,
        seed=ctx.config.seed,
        mesh=tr.mesh_tuple(ctx),
        progress_bar=False,
    )


def run(ctx: StageContext) -> None:
    rows = [{"id": r["id"], "question": r["question"]} for r in ctx.read_stage("seed-questions")]
    s = ctx.section
    for model in s.models:
        probe(ctx, model, s.probe_questions)
        if tr.is_published(ctx, model):
            ctx.log.info("qft:%s already written; not training again", model)
            tr.restore_summary(ctx, model)
        else:
            data = tr.write_data(ctx, model, rows)
            tr.train_and_publish(ctx, model, train_config(ctx, model, data))
        probe(ctx, f"qft:{model}", s.probe_questions)


STAGE = Stage(
    "qft",
    "question fine-tuning: teach each solver to write questions",
    run,
    config=S.QftConfig,
    inputs=("seed-questions",),
    config_deps=PROBE_SETTINGS,
)
