"""Sampling filters: empirical draws vs the exact filtered distribution computed in numpy.

The numpy reference follows HF's warpers literally (sort, cumulative sums), independently of
the bisection used by sqjax. Each case draws 40,000 tokens in one vectorised call and applies
a chi-square test at significance 1e-4 (so a correct sampler fails 1 run in 10,000 per
case), plus an exact check that no token outside the filtered support is ever drawn.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from sqjax.sampling import filters
from sqjax.sampling.filters import RowSampling

V, DRAWS = 48, 40_000
LOGITS = np.random.default_rng(7).normal(0.0, 1.5, V).astype(np.float32)


def reference(logits, temperature, top_k, top_p, min_p):
    """HF order: temperature, top-k, top-p, min-p; returns the normalised distribution."""
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    keep = np.ones(V, bool)
    if top_k > 0:
        keep &= p >= np.sort(p)[::-1][top_k - 1]
    if top_p < 1:
        q = np.where(keep, p, 0) / np.where(keep, p, 0).sum()
        order = np.argsort(q)  # ascending, as HF's TopPLogitsWarper
        cum = np.cumsum(q[order])
        removed = np.zeros(V, bool)
        removed[order] = cum <= 1 - top_p
        removed[order[-1]] = False
        keep &= ~removed
    if min_p > 0:
        keep &= p >= min_p * p.max()
    out = np.where(keep, p, 0)
    return out / out.sum()


_sample = jax.jit(filters.sample)


def draw(temperature, top_k, top_p, min_p, seed=0):
    rows = RowSampling(
        jnp.full((DRAWS,), temperature, jnp.float32),
        jnp.full((DRAWS,), top_k, jnp.int32),
        jnp.full((DRAWS,), top_p, jnp.float32),
        jnp.full((DRAWS,), min_p, jnp.float32),
    )
    u = jax.random.uniform(jax.random.key(seed), (DRAWS,))
    logits = jnp.broadcast_to(jnp.asarray(LOGITS), (DRAWS, V))
    return np.asarray(_sample(logits, rows, u))


CASES = {
    "temperature": (0.7, 0, 1.0, 0.0),
    "top_k": (1.0, 5, 1.0, 0.0),
    "top_p": (1.0, 0, 0.8, 0.0),
    "min_p": (1.0, 0, 1.0, 0.1),
    "combined": (1.3, 12, 0.9, 0.05),
}


@pytest.mark.parametrize("name", list(CASES))
def test_filter_distribution(name):
    expected = reference(LOGITS, *CASES[name])
    tokens = draw(*CASES[name])
    counts = np.bincount(tokens, minlength=V)
    support = expected > 0
    assert counts[~support].sum() == 0, (
        f"drew tokens outside the filtered support: {np.nonzero(counts[~support])}"
    )
    assert 1 < support.sum() < V or name == "temperature"
    chi2 = float((((counts - DRAWS * expected) ** 2)[support] / (DRAWS * expected[support])).sum())
    limit = stats.chi2.ppf(1 - 1e-4, df=int(support.sum()) - 1)
    assert chi2 < limit, f"{name}: chi2={chi2:.1f} >= {limit:.1f}"


def test_greedy_is_argmax_and_rows_mix():
    rows = RowSampling(
        jnp.array([0.0, 1.0]), jnp.array([0, 1]), jnp.array([1.0, 1.0]), jnp.array([0.0, 0.0])
    )
    logits = jnp.stack([jnp.asarray(LOGITS), jnp.asarray(LOGITS[::-1].copy())])
    out = np.asarray(_sample(logits, rows, jnp.array([0.3, 0.99])))
    # row 0 greedy, row 1 top_k=1 sampling: both the argmax of their own logits
    assert out.tolist() == [int(np.argmax(LOGITS)), int(np.argmax(LOGITS[::-1]))]


def test_ties_are_kept_together():
    # four tokens tie for first place: top-k=2 and top-p=0.3 keep the whole tie, nothing else
    logits = jnp.asarray([[3.0, 3.0, 1.0, 3.0, 3.0, 0.0]] * 2)
    rows = RowSampling(jnp.ones(2), jnp.array([2, 0]), jnp.array([1.0, 0.3]), jnp.zeros(2))
    kept = np.asarray(jax.jit(filters.filtered_probs)(logits, rows)) > 0
    assert kept.tolist() == [[True, True, False, True, True, False]] * 2


def test_new_parameters_do_not_recompile():
    before = _sample._cache_size()
    draw(0.5, 3, 0.7, 0.01, seed=1)
    draw(1.1, 0, 0.95, 0.2, seed=2)
    assert _sample._cache_size() == before


def test_inverse_cdf_never_draws_zero_weight():
    w = jnp.asarray(np.tile([[0.0, 1.0, 0.0, 0.0, 2.0, 0.0]], (5, 1)), jnp.float32)
    u = jnp.asarray([0.0, 1 / 3 - 1e-7, 1 / 3, 0.999999, 1.0 - 2**-24])
    assert np.asarray(jax.jit(filters.inverse_cdf)(w, u)).tolist() == [1, 1, 4, 4, 4]
