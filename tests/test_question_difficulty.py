"""Fail-rate labels, Spearman correlation (vs scipy), the held-out split, the per-generator
difficulty cut, and the decoder + scalar-head regressor learning a separable signal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

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
def test_regressor_learns_and_exports(tmp_path):
    from test_question_tiny import tiny_model_dir

    from sqjax.checkpoints.api import export_hf, load_model, load_tokenizer

    d = tiny_model_dir(tmp_path / "m")
    lm, tok = load_model(d, dtype="float32"), load_tokenizer(d)
    model, enc = D.score_model_from_lm(lm), D.text_encoder(tok)
    texts = [f"What is {i} plus {i}?" for i in range(8)]
    texts += [f"A train leaves at {i} and a second train leaves an hour later" for i in range(8)]
    labels = [0.1] * 8 + [0.9] * 8
    assert np.allclose(D.predict(model, enc, texts, batch_size=8, max_len=32), 0.0)  # zero head
    model, losses = D.train_regressor(
        model,
        enc,
        texts,
        labels,
        lr=3e-3,
        epochs=8,
        warmup_ratio=0.1,
        batch_size=8,
        max_len=32,
        seed=0,
    )
    pred = D.predict(model, enc, texts, batch_size=8, max_len=32)
    assert losses[-1] < 0.1 * losses[0]
    assert D.spearman(pred, labels) > 0.8
    export_hf(model, tmp_path / "score", tokenizer=tok)
    again = load_model(tmp_path / "score", dtype="float32")
    assert again.config.head == "score"
    np.testing.assert_allclose(
        D.predict(again, enc, texts, batch_size=8, max_len=32), pred, atol=1e-5
    )
