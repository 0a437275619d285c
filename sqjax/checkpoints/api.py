"""Public loading API: `load_model`, `load_tokenizer`, `export_hf`.

A model path is an HF directory (config.json + safetensors; local or gs://, whose weights are
read in byte ranges), a local `.gguf` file, an `asset:PKG/FILE` value (sqjax.assets), or a hub id such as `Qwen/Qwen2-Math-7B-Instruct`. A hub
id is resolved with `huggingface_hub.snapshot_download` (its cache first, the hub only when the
id is not cached and HF_HUB_OFFLINE is unset), and only when no local path of that name exists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from jax.sharding import Mesh

from sqjax import assets, paths
from sqjax.checkpoints import gguf_cache
from sqjax.checkpoints.gguf_io import load_gguf, load_gguf_tokenizer
from sqjax.checkpoints.safetensors_io import export_hf, load_hf_dir
from sqjax.data import spm_tokenizer
from sqjax.errors import SqjaxError
from sqjax.models.config import DTYPES, attention_settings
from sqjax.models.decoder import Decoder
from sqjax.sharding import SAMPLE_RULES, Rules

__all__ = ["export_hf", "load_model", "load_tokenizer", "resolve_path"]

# What a snapshot needs: configs, safetensors weights, tokenizer files and chat templates.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def resolve_path(path: str | os.PathLike) -> paths.AnyPath:
    """A directory (local or gs://) or local file for an HF dir, a .gguf, an `asset:` value or
    a hub id."""
    text = os.fspath(path)
    local = assets.resolve(text)
    if local.exists():
        return local
    if _HUB_ID.fullmatch(text) and not text.endswith(".gguf"):
        return _snapshot(text)
    raise SqjaxError(
        f"model path {text!r} does not exist; give an HF model directory, a .gguf file, "
        "an asset:PKG/FILE value or a hub id (org/name)"
    )


def _snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except (OSError, ValueError) as e:  # every huggingface_hub error subclasses one of these
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SqjaxError(
            f"model path {repo_id!r} is not a local path and the hub snapshot is unavailable ({first}); "
            "download it where the hub is reachable or pass a local directory"
        ) from None


def _dtypes(dtype: str, param_dtype: str | None) -> tuple[str, str]:
    for name, value in (("dtype", dtype), ("param_dtype", param_dtype)):
        if value is not None and value not in DTYPES:
            raise SqjaxError(
                f"{name}={value!r} is not a known dtype; use one of {', '.join(DTYPES)}"
            )
    return dtype, param_dtype or dtype


def load_model(
    path: str | os.PathLike,
    *,
    dtype: str = "bfloat16",
    mesh: Mesh | None = None,
    param_dtype: str | None = None,
    rules: Rules | None = None,
    per_layer: bool = False,
    attention: str | None = None,
    attention_block: int | None = None,
) -> Decoder:
    """Loads a Decoder (its `.config` describes it) straight into `mesh` (default: one device).

    `dtype` is the compute dtype. `param_dtype` is the storage dtype of the weights; by default
    it follows `dtype`: float32 for float32 compute, otherwise the compute dtype itself (bfloat16
    weights for bfloat16 sampling, half the memory). Pass param_dtype="float32" for training.
    `rules` maps logical axes to mesh axes (default sqjax.sharding.SAMPLE_RULES).
    `per_layer` loads into Decoder.unstacked's layout (one array set per layer; what
    sqjax.LLM samples with on CPU and GPU) with no stacked copy on the way.
    `attention` and `attention_block` set the self-attention kernel and its block size
    (sqjax.models.kernels; None: the config's own, `auto` and 512).
    """
    dtype, param_dtype = _dtypes(dtype, param_dtype)
    local = resolve_path(path)
    _check_remote_file(local)
    kw: dict[str, Any] = {
        "mesh": mesh,
        "rules": rules or SAMPLE_RULES,
        "dtype": dtype,
        "param_dtype": param_dtype,
        "per_layer": per_layer,
        **attention_settings(attention, attention_block),
    }
    if local.is_file():
        if local.suffix != ".gguf":
            raise SqjaxError(
                f"{local}: a model file must be .gguf; for safetensors pass the directory"
            )
        if not gguf_cache.enabled():
            return load_gguf(local, **kw)
        local = gguf_cache.converted(local)
    return load_hf_dir(local, **kw)


def load_tokenizer(path: str | os.PathLike):
    """The transformers tokenizer (with its chat template) of an HF dir, .gguf, asset or hub id."""
    local = resolve_path(path)
    _check_remote_file(local)
    if paths.is_remote(local):  # tokenizer files only, never the weights
        with paths.local_dir(local, skip=(".safetensors", ".gguf")) as copy:
            return _hf_tokenizer(copy)
    if local.is_file():
        if local.suffix != ".gguf":
            raise SqjaxError(
                f"{local}: a tokenizer file must be .gguf; for HF tokenizers pass the directory"
            )
        if not gguf_cache.enabled():
            return load_gguf_tokenizer(local)
        local = gguf_cache.converted(local)
    return _hf_tokenizer(local)


def _hf_tokenizer(local: Path):
    from transformers import AutoTokenizer

    if spm_tokenizer.needs_native_loading(local):  # InternLM2: remote-code SentencePiece class
        return spm_tokenizer.load_spm_tokenizer(local)
    try:
        return AutoTokenizer.from_pretrained(str(local))
    except (OSError, ValueError) as e:
        raise SqjaxError(f"{local}: no loadable tokenizer ({str(e).splitlines()[0]})") from None


def _check_remote_file(path: paths.AnyPath) -> None:
    """A model in a bucket is an HF directory: a .gguf is read whole, so copy it locally."""
    if paths.is_remote(path) and path.is_file():
        raise SqjaxError(
            f"{path}: only HF directories (config.json + safetensors) load from a bucket; "
            "copy the .gguf to a local disk, or stage its converted HF directory in the bucket"
        )
