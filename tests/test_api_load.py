"""sqjax.load_model / load_tokenizer on local dirs and hub ids served from a local HF cache."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from huggingface_hub import constants
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import sqjax
from sqjax.errors import SqjaxError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"


def save_tiny(path):
    torch.manual_seed(2)
    cfg = LlamaConfig(
        vocab_size=32,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        eos_token_id=2,
    )
    hf = LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(path)
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "user", ":", "hi", "there"])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tok.chat_template = TEMPLATE
    tok.save_pretrained(path)
    return hf


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    """A hub cache holding `tiny-org/tiny-llama` at COMMIT, with the hub switched off."""
    cache = tmp_path / "hub"
    repo = cache / "models--tiny-org--tiny-llama"
    hf = save_tiny(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # so "tiny-org/tiny-llama" is not a local path
    return hf


def test_hub_id_loads_from_the_cache(hub_cache):
    ours = sqjax.load_model("tiny-org/tiny-llama", dtype="float32")
    ids_BL = np.array([[1, 5, 9, 30, 2]])
    with torch.no_grad():
        ref_BLV = hub_cache(torch.tensor(ids_BL)).logits.numpy()
    assert np.abs(np.asarray(ours(ids_BL)) - ref_BLV).max() <= 1e-5
    tok = sqjax.load_tokenizer("tiny-org/tiny-llama")
    assert (
        tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
        == "<s>user: hi</s>"
    )


def test_uncached_hub_id_is_one_line_error(hub_cache):
    with pytest.raises(
        SqjaxError,
        match=r"^model path 'tiny-org/absent' is not a local path and the hub snapshot is unavailable \([^\n]*\); download it",
    ):
        sqjax.load_model("tiny-org/absent")


def test_dtype_defaults(tmp_path):
    save_tiny(tmp_path / "m")
    bf16 = sqjax.load_model(tmp_path / "m")
    assert (bf16.config.dtype, bf16.config.param_dtype) == ("bfloat16", "bfloat16")
    assert bf16.blocks.mlp.up[...].dtype == jnp.bfloat16
    f32 = sqjax.load_model(str(tmp_path / "m"), dtype="float32")
    assert (f32.config.dtype, f32.config.param_dtype) == ("float32", "float32")
    master = sqjax.load_model(tmp_path / "m", param_dtype="float32")
    assert (master.config.dtype, master.blocks.mlp.up[...].dtype) == ("bfloat16", jnp.float32)
    assert sqjax.load_model(tmp_path / "m", dtype="float16").embed[...].dtype == jnp.float16


def test_tokenizer_from_directory_keeps_its_template(tmp_path):
    save_tiny(tmp_path / "m")
    tok = sqjax.load_tokenizer(tmp_path / "m")
    assert tok.eos_token == "</s>" and tok.chat_template == TEMPLATE
    with pytest.raises(SqjaxError, match=r"model path '.*absent' does not exist"):
        sqjax.load_tokenizer(tmp_path / "absent")
