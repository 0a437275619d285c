"""Stage qpo: question preference optimization. Each QFT model is trained with sigmoid DPO
(beta 0.1, no SFT term) on its pairs: chosen = optimizer rewrite, rejected = original, both
completing the pre-query prefix; the loss covers question tokens + end-of-turn only
(sqjax.training.inputs.dpo_examples). The reference is the frozen QFT model: the trainer
computes its log-probabilities in one pass before the first step and keeps them in
RUN/qpo/train/<model>/reference_logps.npy. Writes `qpo:<model>`; judged samples before and
after (sqjax.question.probe) show the change in math and solvable shares.
"""

from __future__ import annotations

from typing import Any

from sqjax.errors import SqjaxError
from sqjax.pipeline.context import StageContext
from sqjax.question import training as tr
from sqjax.question.probe import probe, reuse_probe

NAME = "qpo"
DESCRIPTION = "question preference optimization (DPO) of each QFT model"


def train_config(ctx: StageContext, model: str, data: str) -> Any:
    from sqjax.training.config import DPOConfig, OptimConfig, TrainConfig

    s = ctx.section
    policy, tokenizer, compute = tr.load_for_training(ctx, f"qft:{model}")
    return TrainConfig(
        model=policy,
        tokenizer=tokenizer,
        data=(data,),
        output_dir=str(ctx.stage_dir / "train" / model),
        loss="dpo",
        pack=False,
        seq_len=s.max_len,
        batch_size=s.batch_size,
        epochs=s.epochs,
        max_steps=s.max_steps,
        optim=OptimConfig(lr=s.lr, warmup_steps=s.warmup_steps),
        dpo=DPOConfig(variant="sigmoid", beta=s.beta),
        compute_dtype=compute,
        seed=ctx.config.seed,
        mesh=tr.mesh_tuple(ctx),
        progress_bar=False,
    )


def run(ctx: StageContext) -> None:
    pairs = ctx.read_stage("qpo-pairs")
    s = ctx.section
    for model in ctx.config.qft.models:
        mine = [
            {"chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs if p["model"] == model
        ]
        if len(mine) < s.batch_size:
            raise SqjaxError(
                f"qpo: model {model!r} has {len(mine)} pairs, fewer than qpo.batch_size="
                f"{s.batch_size}; lower the batch size or sample more questions (qpo_sample)"
            )
        if not reuse_probe(ctx, "qft", f"qft:{model}", s.probe_questions):
            probe(ctx, f"qft:{model}", s.probe_questions)
        if tr.is_published(ctx, model):
            ctx.log.info("qpo:%s already written; not training again", model)
        else:
            data = tr.write_data(ctx, model, mine)
            summary = tr.train_and_publish(ctx, model, train_config(ctx, model, data))
            ctx.set_metric(f"train/{model}", {**summary, "pairs": len(mine)})
        probe(ctx, f"qpo:{model}", s.probe_questions)
