"""The sampler engine against HF `generate` and against its own invariants.

Tiny random HF models (tests/helpers_hf.py) are the reference. Programs are cached by shape,
so tests share the same slot count, cache length and chunk size where they can.
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from helpers_hf import hf_model, sqjax_twin

from sqjax.errors import SqjaxError
from sqjax.sampling import steps
from sqjax.sampling.api import SamplingParams, generate
from sqjax.sampling.engine import Engine
from sqjax.sharding import make_mesh

LENGTHS = (3, 40, 150, 9, 77)


def prompts_of(lengths, seed=0, vocab=500):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, vocab, n).tolist() for n in lengths]


@pytest.fixture(scope="module", params=["LlamaForCausalLM", "Qwen2ForCausalLM"])
def pair(request):
    hf = hf_model(request.param)
    return hf, sqjax_twin(hf)


def hf_greedy(hf, prompt, new):
    """HF greedy tokens and raw log-probs; EOS neither stops nor is suppressed (ignore_eos)."""
    hf.generation_config.eos_token_id = hf.config.eos_token_id = None
    with torch.no_grad():
        out = hf.generate(
            torch.tensor([prompt]),
            do_sample=False,
            max_new_tokens=new,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
        )
    tokens = out.sequences[0, len(prompt) :].tolist()
    logprobs = [torch.log_softmax(s[0], -1)[t].item() for s, t in zip(out.logits, tokens)]
    return tokens, logprobs


@pytest.mark.slow
def test_greedy_matches_hf_with_continuous_batching(pair):
    hf, ours = pair
    prompts = prompts_of(LENGTHS)
    stats = {}
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True, logprobs=0)
    results = generate(ours, None, prompts, params, max_batch=2, progress=False, engine_stats=stats)
    assert stats["inserts"] >= 3  # more prompts than slots: rows were refilled
    for prompt, res in zip(prompts, results):
        tokens, logprobs = hf_greedy(hf, prompt, 12)
        out = res.outputs[0]
        assert out.token_ids == tokens
        assert out.finish_reason == "length"
        np.testing.assert_allclose(out.logprobs, logprobs, atol=2e-4)
        assert out.cumulative_logprob == pytest.approx(sum(logprobs), abs=2e-3)


def test_cached_decode_equals_full_forward(pair):
    _, ours = pair
    ids = np.asarray(prompts_of([24], seed=3)[0])
    full_LV = np.asarray(ours(jnp.asarray(ids[None]))[0])
    cache = ours.init_cache(1, 64)
    graphdef, weights = nnx.split(ours)

    @jax.jit
    def run(weights, ids_BL, pos_BL, cache, start_B):
        model = nnx.merge(graphdef, weights)
        h, cache = steps.forward(model, ids_BL, pos_BL, cache, start_B)
        return model.logits(h), cache

    # prefill 10 tokens (right-padded to 16), then one token per step
    pad = np.zeros((1, 16), np.int32)
    pad[0, :10] = ids[:10]
    pos = np.where(np.arange(16) < 10, np.arange(16), -1)[None]
    logits, cache = run(weights, pad, pos, cache, np.zeros(1, np.int32))
    np.testing.assert_allclose(np.asarray(logits)[0, :10], full_LV[:10], atol=1e-4)
    for t in range(10, 24):
        logits, cache = run(
            weights, ids[None, t : t + 1], np.array([[t]]), cache, np.array([t], np.int32)
        )
        np.testing.assert_allclose(np.asarray(logits)[0, 0], full_LV[t], atol=1e-4)


@pytest.fixture(scope="module")
def llama():
    return sqjax_twin(hf_model("LlamaForCausalLM"))


@pytest.mark.slow
def test_samples_differ_repeat_and_ignore_batch_size(llama):
    prompts = prompts_of((5, 30, 12))
    params = SamplingParams(
        n=3, temperature=1.0, top_p=0.9, max_tokens=10, ignore_eos=True, seed=11
    )
    a = generate(llama, None, prompts, params, max_batch=2, progress=False)
    b = generate(llama, None, prompts, params, max_batch=8, progress=False)
    tokens_a = [[o.token_ids for o in c.outputs] for c in a]
    tokens_b = [[o.token_ids for o in c.outputs] for c in b]
    assert tokens_a == tokens_b
    for samples in tokens_a:
        assert len({tuple(s) for s in samples}) == 3
    other = generate(
        llama,
        None,
        prompts,
        SamplingParams(**{**params.__dict__, "seed": 12}),
        max_batch=8,
        progress=False,
    )
    assert [[o.token_ids for o in c.outputs] for c in other] != tokens_b


def test_new_temperature_does_not_recompile(llama):
    prompts = prompts_of((5, 30, 12))
    generate(
        llama,
        None,
        prompts,
        SamplingParams(temperature=0.5, top_k=7, max_tokens=10, seed=1),
        max_batch=8,
        progress=False,
    )
    before = sum(steps.TRACES.values())
    stats = {}
    generate(
        llama,
        None,
        prompts,
        [
            SamplingParams(temperature=t, top_p=0.8, min_p=0.05, max_tokens=10, seed=2)
            for t in (0.1, 0.9, 1.7)
        ],
        max_batch=8,
        progress=False,
        engine_stats=stats,
    )
    assert sum(steps.TRACES.values()) == before and stats["compiles"] == 0


def test_a_prompt_is_prefilled_once_for_all_its_samples(llama):
    # one prompt, rows finishing at scattered steps: every refill copies the prompt's cache
    # from a slot that holds it (a sibling's, live or finished) instead of prefilling again
    prompt = prompts_of((30,), seed=4)[0]
    limits = (2, 33, 17, 5, 30, 9, 25, 12, 3, 28, 20, 7, 31, 14)
    params = [SamplingParams(temperature=0, max_tokens=m, ignore_eos=True) for m in limits]
    before, stats = collections.Counter(steps.TRACES), {}
    out = generate(llama, None, [prompt] * len(limits), params, max_batch=8, progress=False,
                   engine_stats=stats)
    assert stats["inserts"] == 1 and stats["prefill_tokens"] == 29
    assert stats["clones"] == len(limits) - 8
    tokens = [c.outputs[0].token_ids for c in out]
    assert [len(t) for t in tokens] == list(limits)
    longest = max(tokens, key=len)  # greedy: copied rows continue exactly like prefilled ones
    assert all(t == longest[: len(t)] for t in tokens)
    assert steps.TRACES["insert"] - before["insert"] <= 1
    assert steps.TRACES["clone"] - before["clone"] <= 2  # 4 or 8 rows copied


def test_each_program_compiles_once_per_run(llama):
    # the loaded weights sit on a one-device mesh: slots made fresh and slots returned by a
    # program must look alike, or the first insert and decode of each shape compile twice
    prompts = prompts_of((300, 290, 310), seed=6)  # a prompt bucket no other test uses
    params = SamplingParams(temperature=0, max_tokens=5, ignore_eos=True)
    before = collections.Counter(steps.TRACES)
    stats = {}
    generate(llama, None, prompts, params, max_batch=1, progress=False, engine_stats=stats)
    assert stats["inserts"] == 3
    # at most once (not at all if an earlier test compiled these shapes); twice before
    assert steps.TRACES["insert"] - before["insert"] <= 1
    # the span 384 in the 512-slot cache (5 steps: no drain)
    assert steps.TRACES["decode"] - before["decode"] <= 1
    assert stats["drain_resizes"] == 0


def test_eos_and_min_tokens(llama):
    prompts = prompts_of((5, 30, 12))  # the shapes of the test above: no new compile

    def run(**kw):
        params = SamplingParams(temperature=0, max_tokens=10, **kw)
        return generate(llama, None, prompts, params, max_batch=8, progress=False)[1].outputs[0]

    free = run(ignore_eos=True).token_ids
    eos = next(t for i, t in enumerate(free) if i >= 2 and t not in free[:i])
    at = free.index(eos)
    cut = run(stop_token_ids=[eos])
    assert cut.token_ids == free[: at + 1] and cut.finish_reason == "stop"
    late = run(stop_token_ids=[eos], min_tokens=at + 2)
    assert eos not in late.token_ids[: at + 2] and late.token_ids[:at] == free[:at]


def test_drain_moves_rows_without_changing_samples(llama, monkeypatch):
    # samples of very different lengths: once none waits, the live rows move to fewer slots
    prompts = prompts_of((5, 30, 12, 7), seed=5)
    params = [
        SamplingParams(n=4, temperature=1.0, top_p=0.9, max_tokens=m, ignore_eos=True,
                       seed=3, logprobs=0)
        for m in (40, 3, 150, 9)
    ]
    stats = {}
    moved = generate(llama, None, prompts, params, max_batch=16, progress=False,
                     drain_min_steps=0, engine_stats=stats)
    assert stats["batch"] == 16 and stats["smallest_batch"] == 4  # the 4 longest samples
    assert stats["drain_resizes"] == 2  # 16 -> 8 -> 4 rows
    # by default the rows move only while 128 steps may be left: once, to 8 rows (after 16
    # steps, 134 left); at 4 live rows only 102 are left, too few to repay new programs
    generate(llama, None, prompts, params, max_batch=16, progress=False, engine_stats=stats)
    assert stats["drain_resizes"] == 1 and stats["smallest_batch"] == 8
    monkeypatch.setattr(Engine, "_drain", lambda self, slots, live, *rest: (slots, live))
    kept = generate(llama, None, prompts, params, max_batch=16, progress=False)
    for a, b in zip(moved, kept):
        assert [o.token_ids for o in a.outputs] == [o.token_ids for o in b.outputs]
        for x, y in zip(a.outputs, b.outputs):
            np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5)
    assert [len(c.outputs[0].token_ids) for c in moved] == [40, 3, 150, 9]


@pytest.mark.slow
def test_sharded_greedy_equals_single_device(llama):
    prompts = prompts_of(LENGTHS, seed=9)
    # one long sample: the drain moves it to 4 rows (the mesh's data axis) under the mesh too
    params = [SamplingParams(temperature=0, max_tokens=m, ignore_eos=True)
              for m in (8, 8, 40, 8, 8)]
    one = generate(llama, None, prompts, params, max_batch=8, progress=False)
    mesh = make_mesh(data=4, fsdp=1, tensor=2)
    stats = {}
    eight = generate(llama, None, prompts, params, mesh=mesh, max_batch=8, progress=False,
                     drain_min_steps=0, engine_stats=stats)
    assert stats["smallest_batch"] == 4
    assert [c.outputs[0].token_ids for c in one] == [c.outputs[0].token_ids for c in eight]


def test_bad_params_raise():
    with pytest.raises(SqjaxError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(SqjaxError, match="min_tokens"):
        SamplingParams(max_tokens=4, min_tokens=5)
