"""Flax NNX ports of the HF decoders ScaleQuest uses (Llama, Mistral, Qwen2, InternLM2)."""

from sqjax.models.config import ModelConfig, RopeScaling
from sqjax.models.decoder import Decoder, create_model

__all__ = ["Decoder", "ModelConfig", "RopeScaling", "create_model"]
