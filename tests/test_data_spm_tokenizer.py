"""The native SentencePiece loader (sqjax.data.spm_tokenizer) against the reference: a slow
tokenizer with InternLM2Tokenizer's logic (text split at added tokens, each segment through
`sentencepiece`'s own encoder, BOS prepended), on Mistral-7B's SentencePiece BPE model from
`mistral-common` given InternLM2's added tokens, chat template and reward token."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import ClassVar

import pytest

spm = pytest.importorskip("sentencepiece")
from transformers.tokenization_python import PreTrainedTokenizer

from sqjax.data.spm_tokenizer import (
    load_spm_tokenizer,
    needs_native_loading,
    read_model,
)
from sqjax.errors import SqjaxError


def _mistral_model() -> Path:
    spec = importlib.util.find_spec("mistral_common")
    if spec is None:
        pytest.skip("mistral-common is not installed (requirements-assets.txt)")
    return Path(spec.submodule_search_locations[0]) / "data" / "tokenizer.model.v1"


# InternLM2's chat template (internlm2-7b-reward's tokenizer_config.json) and the tokens the
# reward format uses; on Mistral's 32,000 pieces they get the next ids.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
ADDED = ["<|im_start|>", "<|im_end|>", "[UNUSED_TOKEN_130]"]
REWARD_TOKEN = "[UNUSED_TOKEN_130]"


class ReferenceInternLM2(PreTrainedTokenizer):
    """InternLM2Tokenizer's encoding path: sentencepiece per segment, BOS, no EOS."""

    vocab_files_names: ClassVar[dict[str, str]] = {"vocab_file": "tokenizer.model"}
    model_input_names: ClassVar[list[str]] = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, **kwargs):
        self.sp = spm.SentencePieceProcessor(model_file=vocab_file)
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def get_vocab(self) -> dict[str, int]:
        vocab = {self.sp.id_to_piece(i): i for i in range(self.vocab_size)}
        return {**vocab, **self.added_tokens_encoder}

    def _tokenize(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def _convert_token_to_id(self, token: str) -> int:
        return self.sp.piece_to_id(token)

    def _convert_id_to_token(self, index: int) -> str:
        return self.sp.id_to_piece(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self.sp.decode(tokens)

    def build_inputs_with_special_tokens(self, ids0, ids1=None):
        return [self.sp.bos_id()] + ids0 + (ids1 or [])


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    d = tmp_path_factory.mktemp("internlm2-like")
    shutil.copy(_mistral_model(), d / "tokenizer.model")
    config = {
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "tokenizer_class": "InternLM2Tokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "</s>",
        "add_bos_token": True,
        "add_eos_token": False,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {
            str(32000 + i): {"content": t, "special": True, "normalized": False}
            for i, t in enumerate(ADDED)
        },
    }
    (d / "tokenizer_config.json").write_text(json.dumps(config))
    ours = load_spm_tokenizer(d)
    ref = ReferenceInternLM2(
        str(d / "tokenizer.model"),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
        additional_special_tokens=ADDED,
        chat_template=CHAT_TEMPLATE,
    )
    assert [ref.convert_tokens_to_ids(t) for t in ADDED] == [32000, 32001, 32002]
    return d, ours, ref


TEXTS = [
    "Hello world",
    " leading space and  two spaces   three",
    "Janet’s ducks lay 16 eggs per day. She eats 3 for breakfast; 1234567 + 0.25 = ?",
    "Let $f(x) = \\frac{x^2 - 1}{x + 1}$. Find $\\sqrt{f(9)}$ and put it in \\boxed{}.",
    "line one\nline two\n\n\ttabbed\r\nwindows",
    "Unicode: café, naïve, 你好世界, Привет, ∑_{i=1}^n i² ≤ ∞, emoji 🎉🙂",
    "trailing spaces   ",
    "   ",
    "",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
    "a<s>b</s>c",
    "x" * 300,
    "\u2581already has the visible space \u2581\u2581 twice",
]


@pytest.mark.parametrize("text", TEXTS)
def test_ids_equal_the_reference(tokenizers, text):
    _, ours, ref = tokenizers
    assert ours(text)["input_ids"] == ref(text)["input_ids"]
    plain = ours(text, add_special_tokens=False)["input_ids"]
    assert plain == ref(text, add_special_tokens=False)["input_ids"]


def test_plain_text_equals_sentencepiece_itself(tokenizers):
    _, ours, ref = tokenizers
    lines = [
        (
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
            "clips in May. How many clips did Natalia sell altogether in April and May?"
        ),
        "What is the smallest positive integer $n$ such that $17n \\equiv 1234 \\pmod{7}?$",
    ]
    for text in lines:
        assert ours(text, add_special_tokens=False)["input_ids"] == ref.sp.encode(text)
        assert ours.decode(ref.sp.encode(text)) == ref.sp.decode(ref.sp.encode(text))


def test_reward_chat_format_equals_the_reference(tokenizers):
    """internlm2-7b-reward's get_score: the chat rendered by the template, encoded without
    added special tokens, then the reward token."""
    _, ours, ref = tokenizers
    chat = [
        {"role": "user", "content": "Tom has 3 apples and buys 4 more. How many now?"},
        {"role": "assistant", "content": "3 + 4 = 7, so the answer is \\boxed{7}.\n"},
    ]
    ids = {}
    for name, tok in (("ours", ours), ("ref", ref)):
        text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=False)
        ids[name] = tok.encode(text, add_special_tokens=False) + [
            tok.convert_tokens_to_ids(REWARD_TOKEN)
        ]
    assert ids["ours"] == ids["ref"]
    assert ids["ours"][0] == 1 and ids["ours"][1] == 32000 and ids["ours"][-1] == 32002
    text = ours.apply_chat_template(chat, tokenize=False)
    assert text.startswith("<s><|im_start|>user\nTom has")


def test_hooked_into_load_tokenizer(tokenizers):
    from sqjax.checkpoints.api import load_tokenizer

    d, ours, _ = tokenizers
    assert needs_native_loading(d)
    loaded = load_tokenizer(d)
    assert loaded("What is 1+1?")["input_ids"] == ours("What is 1+1?")["input_ids"]
    assert loaded.chat_template == CHAT_TEMPLATE


def test_refuses_settings_it_does_not_reproduce(tmp_path):
    proto = read_model(_mistral_model())
    proto.normalizer_spec.remove_extra_whitespaces = True
    (tmp_path / "tokenizer.model").write_bytes(proto.SerializeToString())
    with pytest.raises(SqjaxError, match="remove_extra_whitespaces"):
        load_spm_tokenizer(tmp_path)
    (tmp_path / "tokenizer.model").write_bytes(b"not a model")
    with pytest.raises(SqjaxError, match="not a SentencePiece model"):
        load_spm_tokenizer(tmp_path)


def test_mismatched_added_token_id_is_an_error(tmp_path):
    shutil.copy(_mistral_model(), tmp_path / "tokenizer.model")
    config = {"added_tokens_decoder": {"32005": {"content": "<|im_start|>", "special": True}}}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(SqjaxError, match="id 32005 in the config but 32000"):
        load_spm_tokenizer(tmp_path)
