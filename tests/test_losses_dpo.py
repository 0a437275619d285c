"""DPO variants against their closed forms, and DPO steps on a tiny model."""

from __future__ import annotations

import math

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from test_training_support import tiny_config

from sqjax.data.packing import Example
from sqjax.models.decoder import create_model
from sqjax.sharding import make_mesh
from sqjax.training.dpo import (
    PairLogps,
    dpo_objective,
    hinge_loss,
    ipo_loss,
    reference_free,
    reference_logprobs,
    sigmoid_loss,
)
from sqjax.training.inputs import dpo_collate, local_rows, reference_batches
from sqjax.training.step import init_state, make_train_step, state_sharding

# Hand-made summed log-probs for 3 pairs: policy chosen/rejected, reference chosen/rejected.
PC, PR, RC, RR = [-10.0, -7.5, -20.0], [-12.0, -7.0, -19.0], [-11.0, -8.0, -18.0], [-11.5, -7.2, -19.5]
LP = PairLogps(*(np.asarray(x, np.float32) for x in (PC, PR, RC, RR)))


def logratios(ref=True):
    return [(pc - (rc if ref else 0)) - (pr - (rr if ref else 0)) for pc, pr, rc, rr in zip(PC, PR, RC, RR)]


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


@pytest.mark.parametrize("beta,eps", [(0.1, 0.0), (0.5, 0.2)])
def test_sigmoid_dpo_closed_form(beta, eps):
    loss, m = sigmoid_loss(LP, beta=beta, label_smoothing=eps)
    expected = np.mean([-(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h) for h in logratios()])
    assert abs(float(loss) - expected) < 1e-6
    chosen = [beta * (pc - rc) for pc, rc in zip(PC, RC)]
    rejected = [beta * (pr - rr) for pr, rr in zip(PR, RR)]
    assert abs(float(m["rewards_chosen"]) - np.mean(chosen)) < 1e-6
    assert abs(float(m["rewards_rejected"]) - np.mean(rejected)) < 1e-6
    assert abs(float(m["margin"]) - np.mean(np.subtract(chosen, rejected))) < 1e-6
    assert float(m["accuracy"]) == pytest.approx(np.mean(np.greater(chosen, rejected)))


def test_ipo_closed_form():
    beta = 0.25
    loss, _ = ipo_loss(LP, beta=beta)
    assert abs(float(loss) - np.mean([(h - 1 / (2 * beta)) ** 2 for h in logratios()])) < 1e-5


def test_hinge_closed_form():
    beta = 0.5
    loss, _ = hinge_loss(LP, beta=beta)
    assert abs(float(loss) - np.mean([max(0.0, 1 - beta * h) for h in logratios()])) < 1e-6


def test_reference_free_uses_policy_ratio_only():
    loss, m = sigmoid_loss(reference_free(LP), beta=0.1)
    assert abs(float(loss) - np.mean([-log_sigmoid(0.1 * h) for h in logratios(ref=False)])) < 1e-6
    assert float(m["accuracy"]) == pytest.approx(np.mean(np.greater(PC, PR)))


def random_pairs(n, vocab, seed=0):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        prompt = rng.integers(3, vocab, 4)
        sides = []
        for length in rng.integers(3, 8, 2):
            tokens = np.concatenate([prompt, rng.integers(3, vocab, length)]).astype(np.int32)
            sides.append(Example(tokens, (np.arange(len(tokens)) >= 4).astype(np.int32)))
        pairs.append(tuple(sides))
    return pairs


@pytest.mark.slow
def test_dpo_steps_raise_the_chosen_over_rejected_margin():
    model = create_model(tiny_config(), seed=5)
    pairs = random_pairs(8, 100)
    ref = reference_logprobs(model, reference_batches(pairs, 16, 8, 0))[0]
    batch = dpo_collate([(c, r, rc, rr) for (c, r), rc, rr in zip(pairs, ref["ref_chosen"], ref["ref_rejected"])], 16, 0)
    batch = local_rows(batch, 2, 0, 1)
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = optax.adamw(1e-2, weight_decay=0.0)
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    sharding = state_sharding(params, optimizer, mesh)
    state = init_state(params, optimizer, sharding)
    step = make_train_step(graphdef, dpo_objective("sigmoid", beta=0.1), optimizer, lambda s: 1e-2,
                           sharding, {k: v.shape for k, v in batch.items()}, mesh)
    history = []
    for _ in range(6):
        state, metrics = step(state, batch)
        history.append(jax.device_get(metrics))
    print("dpo: margin", [round(float(m["margin"]), 4) for m in history],
          "loss", [round(float(m["loss"]), 4) for m in history])
    # The policy starts equal to the reference: zero margin, loss log 2.
    assert abs(history[0]["margin"]) < 1e-5 and abs(history[0]["loss"] - math.log(2)) < 1e-5
    assert history[-1]["margin"] > 0.5 and history[-1]["accuracy"] == 1.0
    assert history[-1]["loss"] < history[0]["loss"] - 0.1
