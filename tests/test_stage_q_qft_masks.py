"""QFT examples as the qft stage hands them to the trainer: token ids equal the literal
template text (prefix + question + end-of-turn) of Qwen2, DeepSeek and SmolLM2, and the loss
mask is all ones (`loss: all`, the authors' code) or covers exactly the question and the
end-of-turn token (`loss: question`)."""

import functools

import pytest

from sqjax.data import asset_tokenizers as at
from sqjax.stages.qft import qft_examples

Q = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"
QWEN_SYS = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
SMOL_SYS = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n"
)
BOS_DS, EOS_DS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

# name -> (loader, literal prefix, literal end-of-turn, its token id)
CASES = {
    "qwen2": (at.qwen2_tokenizer, QWEN_SYS + "<|im_start|>user\n", "<|im_end|>", 151645),
    "deepseek": (at.deepseek_tokenizer, BOS_DS + "User: ", "\n\n" + EOS_DS, 1),
    "smollm2": (at.smollm2_tokenizer, SMOL_SYS + "<|im_start|>user\n", "<|im_end|>", 2),
}


@functools.cache
def tokenizer(name):
    return CASES[name][0]()


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "smollm2" else n for n in CASES]
)
def test_qft_ids_and_masks(name):
    _, prefix, end, end_id = CASES[name]
    tok = tokenizer(name)
    rows = [{"id": "a", "question": "  " + Q + "\n"}, {"id": "b", "question": "What is 7 * 8?"}]
    full = qft_examples(rows, tok, "all")
    question_only = qft_examples(rows, tok, "question")
    for row, ex_all, ex_q in zip(rows, full, question_only):
        want_prefix = ids(tok, prefix)
        want_rest = ids(tok, row["question"].strip() + end)
        want = want_prefix + want_rest
        assert ex_all.tokens_L.tolist() == want
        assert ex_q.tokens_L.tolist() == want
        assert ex_all.loss_mask_L.tolist() == [1] * len(want)
        assert ex_q.loss_mask_L.tolist() == [0] * len(want_prefix) + [1] * len(want_rest)
        assert ex_all.tokens_L[-1] == end_id
        assert tok.decode(ex_all.tokens_L.tolist()) == prefix + row["question"].strip() + end
    if name == "deepseek":  # the template's BOS appears once, as the first token
        assert full[0].tokens_L.tolist().count(0) == 1 and full[0].tokens_L[0] == 0
