"""sqjax: ScaleQuest math question synthesis in JAX.

The public names are imported lazily so that `import sqjax` stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "load_model": "sqjax.checkpoints.api",
    "load_tokenizer": "sqjax.checkpoints.api",
    "export_hf": "sqjax.checkpoints.api",
    "LLM": "sqjax.sampling.llm",
    "SamplingParams": "sqjax.sampling.api",
    "Completion": "sqjax.sampling.api",
    "generate": "sqjax.sampling.api",
    "score_logprobs": "sqjax.sampling.api",
    "score_rewards": "sqjax.sampling.api",
    "yes_probability": "sqjax.sampling.api",
    "SqjaxError": "sqjax.errors",
}

__all__ = tuple(sorted(_PUBLIC))


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sqjax' has no attribute {name!r}")
