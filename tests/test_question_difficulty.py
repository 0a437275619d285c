"""Fail-rate labels, Spearman correlation (vs scipy), the held-out split, the per-generator
difficulty cut, and the decoder + scalar-head regressor learning a separable signal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from sqjax import compile_budget
from sqjax.question import difficulty as D
from sqjax.question.filters import difficulty_cut


def test_fail_rate():
    assert D.fail_rate([True, False, False, False]) == 0.75
    assert D.fail_rate([False] * 8) == 1.0 and D.fail_rate([True]) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_spearman_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, 40).astype(float)  # many ties, like fail rates of 4 samples
    b = a + rng.normal(0, 1.5, 40)
    assert D.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(D.spearman([1, 1, 1], [1, 2, 3]))


def test_heldout_split_is_fixed_and_sized():
    ids = [f"gsm8k-train-{i:05d}" for i in range(1, 201)]
    held = D.heldout_ids(ids, 0.1)
    assert len(held) == 20 and held == D.heldout_ids(list(reversed(ids)), 0.1)
    assert len(D.heldout_ids(ids[:10], 0.1)) == 2 and D.heldout_ids(ids[:3], 0.1) == set()


def test_difficulty_cut_drops_the_easiest_share_per_generator():
    rows = [
        {"id": f"{g}{i}", "generator": g, "scores": {"fail_rate": f}}
        for g, rates in (("a", [0.9, 0.1, 0.5, 0.3]), ("b", [0.2, 0.8, 0.6]), ("c", [0.0, 0.0]))
        for i, f in enumerate(rates)
    ]
    kept, dropped = difficulty_cut(rows, 0.5, ["a", "b"])
    assert sorted(r["id"] for r in dropped) == ["a1", "a3", "b0"]  # floor(.5*4)=2, floor(.5*3)=1
    assert all(
        r["dropped_by"] == "difficulty" and "easiest 50%" in r["drop_reason"] for r in dropped
    )
    assert {"c0", "c1"} <= {r["id"] for r in kept}  # c is not in apply_to
    assert len(kept) + len(dropped) == len(rows)


@pytest.mark.slow
def test_regressor_learns_through_the_trainer_and_exports(tmp_path):
    """The difficulty regressor is the trainer's `regression` loss: a zero score head on the
    LM's decoder, MSE, sharded over the 8 test devices, checkpointed and exported as an HF
    score-head directory that load_model reads back with the same predictions."""
    from test_question_tiny import tiny_model_dir

    from sqjax.checkpoints.api import load_model, load_tokenizer
    from sqjax.data.jsonl import atomic_write_jsonl, load_jsonl
    from sqjax.training.api import train
    from sqjax.training.config import OptimConfig, TrainConfig
    from sqjax.training.regression import predict, text_encoder, with_score_head

    d = tiny_model_dir(tmp_path / "m")
    tok = load_tokenizer(d)
    texts = [f"What is {i} plus {i}?" for i in range(8)]
    texts += [f"A train leaves at {i} and a second train leaves an hour later" for i in range(8)]
    labels = [0.1] * 8 + [0.9] * 8
    enc = text_encoder(tok)
    untrained = with_score_head(load_model(d, dtype="float32"))
    assert np.allclose(predict(untrained, enc, texts, batch_size=8, max_len=32), 0.0)
    atomic_write_jsonl(
        tmp_path / "rows.jsonl", [{"text": t, "label": y} for t, y in zip(texts, labels)]
    )
    cfg = TrainConfig(
        model=str(d),
        tokenizer=tok,
        data=(str(tmp_path / "rows.jsonl"),),
        output_dir=str(tmp_path / "train"),
        loss="regression",
        pack=False,
        seq_len=32,
        batch_size=8,
        epochs=8,
        optim=OptimConfig(lr=3e-3, warmup_ratio=0.1),
        save_every=4,
        progress_bar=False,
    )
    result = train(cfg)
    losses = [r["loss"] for r in load_jsonl(result.metrics_path)]
    assert result.steps == len(losses) == 16 and losses[-1] < 0.1 * losses[0]
    again = load_model(result.hf_dir, dtype="float32")
    assert again.config.head == "score"
    pred = predict(again, enc, texts, batch_size=8, max_len=32)
    assert D.spearman(pred, labels) > 0.8
    assert train(cfg).resumed_from == 16  # checkpointed: a rerun trains no step again


def test_predict_compiles_once_per_shape(tmp_path):
    from test_question_tiny import tiny_model_dir

    from sqjax.checkpoints.api import load_model, load_tokenizer
    from sqjax.training.regression import predict, text_encoder, with_score_head

    d = tiny_model_dir(tmp_path / "m")
    model, enc = with_score_head(load_model(d, dtype="float32")), text_encoder(load_tokenizer(d))
    texts = ["What is 1 plus 1?", "What is 2 plus 2?"]
    first = predict(model, enc, texts, batch_size=4, max_len=32)
    before = compile_budget.totals()
    second = predict(model, enc, texts, batch_size=4, max_len=32)
    np.testing.assert_array_equal(first, second)
    assert (compile_budget.totals() - before).programs == 0


def test_plan_compiles_the_trainers_regressor_step(tmp_path):
    """`sqjax plan` sizes the regressor with the trainer's own step (regression loss)."""
    from test_question_tiny import tiny_model_dir

    from sqjax.checkpoints.api import load_model
    from sqjax.plan import programs as P
    from sqjax.sharding import make_mesh

    cfg = load_model(tiny_model_dir(tmp_path / "m"), dtype="float32").config
    shape = P.TrainShape("regression", rows=8, seq_len=32, compute_dtype="float32")
    compiled = P.regressor_step(cfg, make_mesh(), shape).compile()
    assert compiled.memory_analysis() is not None
