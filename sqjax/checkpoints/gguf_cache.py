"""A GGUF file converted once to an HF directory (float32 safetensors + tokenizer), then reused.

Parsing a GGUF file is slow: `gguf.GGUFReader` walks the embedded 49K-token vocabulary and
merges in Python, and transformers does that again for the tokenizer. Every stage of a run
loads its models afresh, so sqjax dequantizes once and keeps the result, keyed by the file's
path, size and modification time. Set SQJAX_GGUF_CACHE=0 to read the GGUF file every time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

VERSION = "1"  # bump when the conversion changes


def cache_root() -> Path:
    base = os.environ.get("SQJAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sqjax")
    return Path(base) / "gguf"


def enabled() -> bool:
    return os.environ.get("SQJAX_GGUF_CACHE", "1") != "0"


def cached_dir(gguf_path: Path) -> Path:
    """Where the conversion of `gguf_path` lives (it may not exist yet)."""
    st = gguf_path.stat()
    key = f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{VERSION}"
    return cache_root() / f"{gguf_path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def converted(gguf_path: Path) -> Path:
    """The HF directory for a GGUF file, converting it first if needed (atomic: a reader sees
    a complete directory or none; concurrent converters race harmlessly)."""
    out = cached_dir(gguf_path)
    if (out / "config.json").is_file():
        return out
    from sqjax.checkpoints.gguf_io import load_gguf, load_gguf_tokenizer
    from sqjax.checkpoints.safetensors_io import export_hf

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        model = load_gguf(gguf_path, dtype="float32", param_dtype="float32")
        try:
            tokenizer = load_gguf_tokenizer(gguf_path)
        except ValueError:  # a weights-only GGUF file: transformers finds no tokenizer in it
            tokenizer = None
        export_hf(model, tmp / "hf", tokenizer=tokenizer)
        try:
            os.rename(tmp / "hf", out)
        except OSError:
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
