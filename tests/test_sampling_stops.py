"""Stop strings (vLLM semantics) and text decoding through a real tokenizer."""

import pytest
from helpers_hf import hf_model, sqjax_twin
from sampling_tokenizer import char_tokenizer

from sqjax.sampling.api import SamplingParams, generate


@pytest.fixture(scope="module")
def setup():
    tok = char_tokenizer()
    model = sqjax_twin(
        hf_model("LlamaForCausalLM", vocab_size=len(tok), eos_token_id=1, bos_token_id=None)
    )
    return tok, model


def boundary_stop(tok, ids):
    """A 2-character string made of the last char of token i and the first of token i+1,
    whose first occurrence in the text is exactly at that boundary."""
    text = tok.decode(ids, skip_special_tokens=True)
    for i in range(len(ids) - 1):
        head = tok.decode(ids[: i + 1], skip_special_tokens=True)
        nxt = tok.decode(ids[i + 1 : i + 2], skip_special_tokens=True)
        if head and nxt and text.find(head[-1] + nxt[0]) == len(head) - 1:
            return head[-1] + nxt[0], i + 2
    raise AssertionError(f"no usable token boundary in {text!r}")


def test_stop_string_spanning_two_tokens(setup):
    tok, model = setup
    base = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    free = generate(model, tok, ["the cat in"], base, max_batch=8, progress=False)[0].outputs[0]
    assert free.text == tok.decode(free.token_ids, skip_special_tokens=True)
    stop, n_tokens = boundary_stop(tok, free.token_ids)
    cut = free.text.find(stop)
    params = SamplingParams(**{**base.__dict__, "stop": [stop, "never!!"]})
    out = generate(model, tok, ["the cat in"], params, max_batch=8, progress=False)[0].outputs[0]
    assert out.finish_reason == "stop"
    assert out.text == free.text[:cut]
    assert out.token_ids == free.token_ids[:n_tokens]


def test_stop_string_before_min_tokens_is_ignored(setup):
    tok, model = setup
    base = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    free = generate(model, tok, ["the cat in"], base, max_batch=8, progress=False)[0].outputs[0]
    stop, n_tokens = boundary_stop(tok, free.token_ids)
    late = SamplingParams(**{**base.__dict__, "stop": stop, "min_tokens": n_tokens + 1})
    out = generate(model, tok, ["the cat in"], late, max_batch=8, progress=False)[0].outputs[0]
    rest = free.text[len(tok.decode(free.token_ids[:n_tokens], skip_special_tokens=True)) :]
    assert out.token_ids == free.token_ids[: len(out.token_ids)]
    if stop in rest:
        assert out.finish_reason == "stop" and len(out.token_ids) > n_tokens
    else:
        assert out.finish_reason == "length" and out.text == free.text
