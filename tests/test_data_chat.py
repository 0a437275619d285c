"""Chat-template pieces from real tokenizers (Qwen2, DeepSeek, SmolLM2, Llama-3)."""

import functools

import pytest

from sqjax.data import asset_tokenizers as at
from sqjax.data.chat import chat_format, encoder
from sqjax.data.packing import tokenize_sft
from sqjax.errors import SqjaxError

Q = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"
R = "She sold 48 clips, so the answer is \\boxed{48}."
QWEN_SYS = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
SMOL_SYS = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n"
)
BOS_DS, EOS_DS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

# name -> (loader, expected QFT text, expected single-id special tokens in it)
CASES = {
    "qwen2": (
        at.qwen2_tokenizer,
        QWEN_SYS + "<|im_start|>user\n" + Q + "<|im_end|>",
        {"<|im_start|>": 151644, "<|im_end|>": 151645},
    ),
    "deepseek": (
        at.deepseek_tokenizer,
        BOS_DS + "User: " + Q + "\n\n" + EOS_DS,
        {BOS_DS: 0, EOS_DS: 1},
    ),
    "smollm2": (
        at.smollm2_tokenizer,
        SMOL_SYS + "<|im_start|>user\n" + Q + "<|im_end|>",
        {"<|im_start|>": 1, "<|im_end|>": 2},
    ),
    "llama3": (
        at.llama3_tokenizer,
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + Q + "<|eot_id|>",
        {"<|begin_of_text|>": 128000, "<|start_header_id|>": 128006, "<|eot_id|>": 128009},
    ),
}


@functools.cache
def tokenizer(name):
    return CASES[name][0]()


@pytest.fixture(
    scope="module",
    params=[pytest.param(n, marks=pytest.mark.slow) if n == "smollm2" else n for n in CASES],
)
def case(request):
    _, expected, specials = CASES[request.param]
    return request.param, tokenizer(request.param), expected, specials


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_qft_text_and_ids_match_the_literal_template(case):
    name, tok, expected, specials = case
    fmt = chat_format(tok)
    assert fmt.qft_text(" " + Q + "\n") == expected
    ex = tokenize_sft(encoder(tok), fmt.prefix, fmt.qft_completion(Q), "full")
    cut = expected.index(Q)
    assert ex.tokens_L.tolist() == ids(tok, expected[:cut]) + ids(tok, expected[cut:])
    assert ex.loss_mask_L.tolist() == [1] * len(ex.tokens_L)
    for token, token_id in specials.items():
        assert ids(tok, token) == [token_id], token
    end_token = fmt.end_of_turn.split("\n")[-1]
    assert ex.tokens_L[-1] == ids(tok, end_token)[0] and len(ids(tok, end_token)) == 1
    if name != "deepseek":  # the prefix ends in a special token or a newline: no merging
        assert ex.tokens_L.tolist() == ids(tok, expected)


def test_prefix_is_where_the_user_turn_begins(case):
    name, tok, _, _ = case
    fmt = chat_format(tok)
    rendered = tok.apply_chat_template([{"role": "user", "content": Q}], tokenize=False)
    assert rendered == fmt.prefix + Q + fmt.user_suffix
    # Sampling from the prefix continues at the user's first token. Encoded apart, prefix and
    # rest decode back to the rendered turn; jointly encoded they agree except for DeepSeek,
    # whose trailing space in "User: " merges into the question's first word.
    split_ids = ids(tok, fmt.prefix) + ids(tok, Q + fmt.user_suffix)
    assert tok.decode(split_ids) == rendered
    assert (split_ids == ids(tok, rendered)) == (name != "deepseek")


def test_chat_prompt_and_completion_mask(case):
    _, tok, _, _ = case
    fmt = chat_format(tok)
    messages = [{"role": "user", "content": Q}]
    want_prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert fmt.chat_prompt(Q) == want_prompt
    ex = tokenize_sft(encoder(tok), fmt.chat_prompt(Q), fmt.completion_text(R), "completion")
    n_prompt = len(ids(tok, want_prompt))
    assert ex.loss_mask_L.tolist() == [0] * n_prompt + [1] * (len(ex.tokens_L) - n_prompt)
    trained = tok.decode(ex.tokens_L[n_prompt:].tolist())
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": R}], tokenize=False)
    assert full.startswith(want_prompt + trained)
    assert trained.strip().startswith(R) and trained.endswith(fmt.assistant_end)


def test_stop_tokens_match_the_authors_lists():
    qwen = chat_format(tokenizer("qwen2"))
    assert set(qwen.stop_strings) == {"<|im_start|>", "<|im_end|>", "<|endoftext|>"}
    assert set(qwen.stop_ids) == {151643, 151644, 151645}
    ds = chat_format(tokenizer("deepseek"))
    assert set(ds.stop_strings) == {BOS_DS, EOS_DS} and set(ds.stop_ids) == {0, 1}
    assert ds.prefix == BOS_DS + "User: "


def test_system_message_goes_into_the_prefix():
    fmt = chat_format(at.deepseek_tokenizer(), system="Be brief.")
    assert fmt.prefix == BOS_DS + "Be brief.\n\nUser: "


@pytest.mark.parametrize(
    "template, match",
    [
        ("{% for m in messages %}{{ m['content'] }}{{ m['content'] }}{% endfor %}", "2 times"),
        ("{% for m in messages %}{{ m['role'] }}{% endfor %}", "0 times"),
    ],
)
def test_template_must_render_content_once(template, match):
    tok = at.deepseek_tokenizer()
    tok.chat_template = template
    with pytest.raises(SqjaxError, match=match):
        chat_format(tok)
