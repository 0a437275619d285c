"""Tiny random transformers models and their sqjax twins, for parity tests.

The HF models are the reference: eager attention, float32, weights redrawn so that every
tensor (norm weights and biases included) differs from its default and logits are O(1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import transformers

from sqjax.checkpoints.convert import load_from_tensors
from sqjax.models.decoder import Decoder
from sqjax.models.hf_config import from_hf_config

PAD_ID = 0
# hidden 64 = 4 query heads x 16, 2 kv heads (G = 2): small, but GQA grouping is exercised.
TINY = {
    "vocab_size": 500,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-5,
    "pad_token_id": PAD_ID,
}


def hf_model(arch: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """A tiny random `transformers.<arch>` (e.g. "LlamaForCausalLM") in eval mode."""
    cls = getattr(transformers, arch)
    config = cls.config_class(**{**TINY, **overrides})
    config.architectures = [arch]
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = cls(config).eval()
    randomize_(model, seed)
    return model


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Redraws every parameter: norms 1 + N(0, 0.2), biases N(0, 0.3), matrices N(0, 1/fan_in)."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim == 1:
                p.copy_(1 + 0.2 * noise if "norm" in name else 0.3 * noise)
            elif "embed" in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[1]))


def state_dict_np(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def sqjax_twin(model: torch.nn.Module) -> Decoder:
    """The sqjax Decoder built from the HF model's config.json and tensors."""
    sd = state_dict_np(model)
    cfg = from_hf_config(model.config.to_dict(), source="tiny HF model")
    return load_from_tensors(cfg, sd.keys(), sd.__getitem__)


def padded_batch(
    lengths: list[int], width: int, side: str, vocab: int = TINY["vocab_size"], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random token ids (never PAD_ID) padded with PAD_ID on `side`: (ids [B, L], mask [B, L])."""
    rng = np.random.default_rng(seed)
    ids_BL = np.full((len(lengths), width), PAD_ID, np.int64)
    mask_BL = np.zeros((len(lengths), width), np.int64)
    for b, n in enumerate(lengths):
        span = slice(width - n, width) if side == "left" else slice(0, n)
        ids_BL[b, span] = rng.integers(1, vocab, n)
        mask_BL[b, span] = 1
    return ids_BL, mask_BL


def hf_positions(mask_BL: np.ndarray) -> np.ndarray:
    """The position ids HF generation passes for a padded batch (pads get 0 or 1, unused)."""
    return np.maximum(np.cumsum(mask_BL, axis=-1) - 1, 0)


def hf_forward(model: torch.nn.Module, ids_BL: np.ndarray, mask_BL: np.ndarray, **kw):
    """HF model output with explicit position ids, so left padding is handled as in generate."""
    with torch.no_grad():
        return model(
            input_ids=torch.from_numpy(ids_BL),
            attention_mask=torch.from_numpy(mask_BL),
            position_ids=torch.from_numpy(hf_positions(mask_BL)),
            **kw,
        )


def max_diff_real(a_BL_: np.ndarray, b_BL_: np.ndarray, mask_BL: np.ndarray) -> float:
    """max |a - b| over the real (mask = 1) positions."""
    diff = np.abs(np.asarray(a_BL_, np.float64) - np.asarray(b_BL_, np.float64))
    return float(diff[mask_BL.astype(bool)].max())
