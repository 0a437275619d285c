"""Scoring: completion log-probs, P("Yes") and reward scores against transformers."""


import numpy as np
import pytest
import torch
from helpers_hf import hf_model, sqjax_twin
from sampling_tokenizer import char_tokenizer

from sqjax.errors import SqjaxError
from sqjax.sampling.api import score_logprobs, score_rewards, yes_probability
from sqjax.sampling.llm import LLM
from sqjax.sharding import make_mesh


@pytest.fixture(scope="module")
def lm():
    tok = char_tokenizer()
    hf = hf_model("LlamaForCausalLM", vocab_size=len(tok), eos_token_id=1, bos_token_id=None)
    return tok, hf, sqjax_twin(hf)


def torch_logprobs(hf, prompt, completion):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        lp = torch.log_softmax(hf(ids).logits[0].double(), -1)
    picked = [lp[len(prompt) - 1 + j, t].item() for j, t in enumerate(completion)]
    return sum(picked), sum(picked) / len(picked)


def test_summed_logprobs_match_torch(lm):
    tok, hf, ours = lm
    rng = np.random.default_rng(1)
    prompts = [rng.integers(2, len(tok), n).tolist() for n in (5, 17, 70)]
    completions = [rng.integers(2, len(tok), n).tolist() for n in (4, 30, 9)]
    got = score_logprobs(ours, None, prompts, completions, batch_size=2)
    for p, c, g in zip(prompts, completions, got):
        total, mean = torch_logprobs(hf, p, c)
        assert g.num_tokens == len(c)
        assert g.sum_logprob == pytest.approx(total, abs=1e-3)
        assert g.mean_logprob == pytest.approx(mean, abs=1e-4)
    sharded = score_logprobs(
        ours, None, prompts, completions, batch_size=2, mesh=make_mesh(data=4, tensor=2)
    )
    np.testing.assert_allclose(
        [s.sum_logprob for s in sharded], [g.sum_logprob for g in got], atol=1e-4
    )


def test_string_logprobs_and_yes_probability(lm):
    tok, hf, ours = lm
    got = score_logprobs(ours, tok, ["the cat"], [" in an hat"])[0]
    total, _ = torch_logprobs(
        hf, tok.encode("the cat"), tok.encode(" in an hat", add_special_tokens=False)
    )
    assert got.sum_logprob == pytest.approx(total, abs=1e-3)
    prompts = ["is it? ", "the answer:"]
    yes = yes_probability(ours, tok, prompts, words=("y", "n"))
    for prompt, p in zip(prompts, yes):
        with torch.no_grad():
            probs = torch.softmax(hf(torch.tensor([tok.encode(prompt)])).logits[0, -1].double(), -1)
        assert p == pytest.approx(
            (probs[tok.convert_tokens_to_ids("y")] + probs[tok.convert_tokens_to_ids("n")]).item(),
            abs=1e-6,
        )
    with pytest.raises(SqjaxError, match="one token"):
        yes_probability(ours, tok, prompts, words=("yes",))


@pytest.mark.parametrize(
    "arch", ["LlamaForSequenceClassification", "Qwen2ForSequenceClassification"]
)
def test_rewards_match_hf_sequence_classification(arch):
    tok = char_tokenizer()
    hf = hf_model(arch, vocab_size=len(tok), num_labels=1, eos_token_id=1, bos_token_id=None)
    ours = sqjax_twin(hf)
    questions = ["what is two and two?", "name a cat.", "is the sky blue?"]
    responses = ["four.", "tom", "yes it is, in the day and in the haze."]
    got = score_rewards(ours, tok, questions, responses, batch_size=2)
    for q, r, g in zip(questions, responses, got):
        ids = LLM(ours, tok).reward_input_ids(q, r)
        chat = tok.apply_chat_template(
            [{"role": "user", "content": q}, {"role": "assistant", "content": r}], tokenize=False
        )
        assert ids == tok.encode(chat, add_special_tokens=False)
        with torch.no_grad():
            ref = hf(torch.tensor([ids])).logits[0, 0].item()
        assert g == pytest.approx(ref, abs=1e-4)


def test_internlm2_reward_token_is_appended(lm):
    tok, _, ours = lm
    llm = LLM(ours, tok)
    plain = llm.reward_input_ids("q?", "a.")
    llm.config = ours.config.replace(reward_token_id=7)
    assert llm.reward_input_ids("q?", "a.") == plain + [7]
