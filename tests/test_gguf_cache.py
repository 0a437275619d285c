"""The GGUF conversion cache: converted once, then read without parsing the GGUF again, with
the same weights, tokenizer and chat template as a direct GGUF load."""

import jax.numpy as jnp
import numpy as np
import pytest

from sqjax import assets
from sqjax.checkpoints import gguf_cache, gguf_io
from sqjax.checkpoints.api import load_model, load_tokenizer

pytestmark = pytest.mark.slow


def test_converted_once_then_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SQJAX_CACHE", str(tmp_path))
    path = assets.resolve(assets.SMOLLM2_GGUF)
    model = load_model(assets.SMOLLM2_GGUF, dtype="float32")
    assert (gguf_cache.cached_dir(path) / "config.json").is_file()

    def no_parsing(*args, **kwargs):
        raise AssertionError("the GGUF file was parsed again")

    monkeypatch.setattr(gguf_io, "open_reader", no_parsing)
    monkeypatch.setattr(gguf_io, "load_gguf_tokenizer", no_parsing)
    again = load_model(assets.SMOLLM2_GGUF, dtype="float32")
    tokenizer = load_tokenizer(assets.SMOLLM2_GGUF)
    monkeypatch.undo()

    direct_tok = gguf_io.load_gguf_tokenizer(path)
    chat = [{"role": "user", "content": "Find x if 2x + 3 = 11. Ünïcode ok?"}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert text == direct_tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert tokenizer.encode(text) == direct_tok.encode(text)
    assert tokenizer.eos_token == direct_tok.eos_token == "<|im_end|>"

    ids = jnp.asarray([tokenizer.encode(text)])
    direct = gguf_io.load_gguf(path, dtype="float32", param_dtype="float32")
    np.testing.assert_array_equal(np.asarray(again(ids)), np.asarray(direct(ids)))
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(direct(ids)))


def test_cache_can_be_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("SQJAX_CACHE", str(tmp_path))
    monkeypatch.setenv("SQJAX_GGUF_CACHE", "0")
    tokenizer = load_tokenizer(assets.SMOLLM2_GGUF)
    assert tokenizer.eos_token == "<|im_end|>"
    assert not any(tmp_path.iterdir())
