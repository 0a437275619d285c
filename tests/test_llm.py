"""The long-lived `LLM` handle: one weight placement and one set of compiled programs for
every call, scoring included, and the same outputs as the one-call functions."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from helpers_hf import hf_model, sqjax_twin

from sqjax import compile_budget
from sqjax.checkpoints.convert import export_tensors, load_from_tensors
from sqjax.errors import SqjaxError
from sqjax.sampling import scoring
from sqjax.sampling import steps as S
from sqjax.sampling.api import SamplingParams, generate
from sqjax.sampling.llm import LLM
from sqjax.sharding import make_mesh

PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12], [13, 14]]
PARAMS = SamplingParams(temperature=0.8, max_tokens=6, ignore_eos=True, seed=1, n=2)


def buffers(llm: LLM) -> list[int]:
    """Where every shard of every weight lives on its device."""
    leaves = jax.tree.leaves(llm.weights)
    return [s.data.unsafe_buffer_pointer() for x in leaves for s in x.addressable_shards]


@pytest.fixture(scope="module")
def model():
    return sqjax_twin(hf_model("LlamaForCausalLM"))


def test_reused_handle_compiles_nothing_and_moves_no_weight(model):
    mesh = make_mesh(data=2, fsdp=1, tensor=2, devices=jax.devices()[:4])
    llm = LLM(model, mesh=mesh, max_batch=4)
    first = llm.generate(PROMPTS, PARAMS)
    scores = llm.score_logprobs(PROMPTS, [[3, 4]] * 3, batch_size=4)
    where = buffers(llm)
    traces = sum(S.TRACES.values()) + sum(scoring.TRACES.values())
    before = compile_budget.totals()
    with jax.transfer_guard_device_to_device("disallow"):
        again = llm.generate(PROMPTS, PARAMS)
        scores_again = llm.score_logprobs(PROMPTS, [[3, 4]] * 3, batch_size=4)
    assert llm.stats["compiles"] == 0
    assert sum(S.TRACES.values()) + sum(scoring.TRACES.values()) == traces
    assert (compile_budget.totals() - before).programs == 0
    assert buffers(llm) == where  # the weights never moved or were copied
    assert [[o.token_ids for o in c.outputs] for c in again] == [
        [o.token_ids for o in c.outputs] for c in first
    ]
    assert scores_again == scores


def test_handle_equals_the_one_call_functions(model):
    llm = LLM(model, max_batch=4)
    got = [[o.token_ids for o in c.outputs] for c in llm.generate(PROMPTS, PARAMS)]
    want = [[o.token_ids for o in c.outputs] for c in generate(model, None, PROMPTS, PARAMS,
                                                                  max_batch=4, progress=False)]
    assert got == want
    twin = llm.with_tokenizer(object())
    assert twin.weights is llm.weights and twin.sampler_programs(None) is llm.sampler_programs(None)


def test_compile_budget_counts_compilations():
    before = compile_budget.totals()
    jax.jit(lambda x: x * 3 + 1)(np.arange(7.0))
    spent = compile_budget.totals() - before
    assert spent.programs >= 1 and spent.seconds > 0
    before = compile_budget.totals()
    jax.jit(lambda x: x * 3 + 1)  # built, never called: nothing compiled
    assert (compile_budget.totals() - before).programs == 0


def test_both_layer_layouts_sample_the_same_tokens(model):
    """The stacked layout (one scanned layer: TPU's default) and the per-layer one (a loop
    over per-layer weights and cache arrays: CPU's and GPU's) are the same sampler, sharded
    too, through inserts, clones of held prompts, span cuts and the drain."""
    mesh = make_mesh(data=2, fsdp=1, tensor=2, devices=jax.devices()[:4])
    prompts = PROMPTS + [[3] * 40]  # a long prompt: spans and a drain resize
    params = SamplingParams(temperature=0.8, max_tokens=40, ignore_eos=True, seed=3, n=2)
    got = {}
    for layout in ("stacked", "layers"):
        llm = LLM(model, mesh=mesh, max_batch=4, layout=layout, drain_min_steps=0)
        assert llm.model.per_layer == (layout == "layers")
        got[layout] = [[o.token_ids for o in c.outputs] for c in llm.generate(prompts, params)]
    assert got["stacked"] == got["layers"]
    assert not model.per_layer  # the caller's model keeps its stacked layout


def test_unknown_layout_is_an_error_naming_the_choices(model):
    with pytest.raises(SqjaxError, match="layout='scan'.*auto, layers, stacked"):
        LLM(model, layout="scan")


def test_a_second_model_of_the_same_architecture_compiles_nothing(model):
    """A pipeline rebuilds its handles after each training stage, and the QFT probe samples
    from the base and the trained model: the second model loads and samples with the
    programs the first one compiled."""
    tensors = {k: v * 1.01 for k, v in export_tensors(model)}  # another model, same shapes
    LLM(model, max_batch=4).generate(PROMPTS, PARAMS)
    load_from_tensors(model.config, tensors, tensors.__getitem__)
    before = compile_budget.totals()
    traces = sum(S.TRACES.values())
    other = load_from_tensors(model.config, tensors, tensors.__getitem__)
    got = LLM(other, max_batch=4).generate(PROMPTS, PARAMS)
    assert (compile_budget.totals() - before).programs == 0
    assert sum(S.TRACES.values()) == traces
    assert len(got) == len(PROMPTS)


def test_loading_per_layer_equals_unstacking(model):
    """A path given to a per-layer handle loads each layer's tensors into their own arrays
    (no stacked copy on the way): the same weights as unstacking the stacked load."""
    tensors = dict(export_tensors(model))
    direct = load_from_tensors(model.config, tensors, tensors.__getitem__, per_layer=True)
    assert direct.per_layer
    want = nnx.to_flat_state(nnx.state(model.unstacked()))
    got = dict(nnx.to_flat_state(nnx.state(direct)))
    assert set(got) == {path for path, _ in want}
    for path, var in want:
        assert np.array_equal(np.asarray(got[path].get_value()), np.asarray(var.get_value()))
