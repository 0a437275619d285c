"""HF checkpoint directories: config.json + safetensors, read tensor by tensor and written back.

Loading opens every shard with `safe_open` (memory-mapped) and hands `convert.load_from_tensors`
one tensor at a time, so the host holds about one tensor beyond the model. Export writes
config.json, generation_config.json and safetensors shards (with an index when there is more
than one) into a temporary sibling directory and moves the files into place only when all of
them are written.

A gs:// directory (sqjax.paths) is read tensor by tensor with byte-range reads, never copied
whole; an export to gs:// is written locally and uploaded, config.json last.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import ml_dtypes
import numpy as np
from jax.sharding import Mesh
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from sqjax import paths
from sqjax.checkpoints.convert import export_tensors, load_from_tensors
from sqjax.errors import SqjaxError
from sqjax.models.config import ModelConfig
from sqjax.models.decoder import Decoder
from sqjax.models.hf_config import from_hf_config, to_hf_config
from sqjax.sharding import SAMPLE_RULES, Rules

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DEFAULT_SHARD_BYTES = 2 * 1024**3
# safetensors dtype names -> numpy dtypes, for the raw reader.
_RAW_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_hf_config(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed config.json of an HF model directory."""
    path = paths.as_path(model_dir) / "config.json"
    if not path.is_file():
        raise SqjaxError(
            f"{model_dir}: no config.json; point at an HF model directory (save_pretrained output)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SqjaxError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None


def load_config(model_dir: str | os.PathLike, **overrides: Any) -> ModelConfig:
    return from_hf_config(
        read_hf_config(model_dir), str(paths.as_path(model_dir) / "config.json"), **overrides
    )


def weight_files(model_dir: str | os.PathLike) -> dict[str, paths.AnyPath]:
    """Maps every tensor key to the shard that holds it; checks that every shard exists."""
    model_dir = paths.as_path(model_dir)
    index = model_dir / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SqjaxError(
                f"{index}: not a safetensors index (expected a 'weight_map' object)"
            ) from None
        for shard in sorted(set(weight_map.values())):
            if not (model_dir / shard).is_file():
                key = next(k for k, v in weight_map.items() if v == shard)
                raise SqjaxError(
                    f"{index}: shard {shard!r} (holding {key!r}) is missing from {model_dir}; "
                    "copy or re-download the complete checkpoint"
                )
        return {k: model_dir / v for k, v in weight_map.items()}
    single = model_dir / SINGLE_FILE
    if not single.is_file():
        raise SqjaxError(
            f"{model_dir}: neither {SINGLE_FILE} nor {INDEX_FILE} found; only safetensors checkpoints are supported"
        )
    with _open(single) as f:
        return {k: single for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)


@contextlib.contextmanager
def _open(path: paths.AnyPath):
    """safe_open with corrupt or truncated files reported as one-line SqjaxErrors."""
    if paths.is_remote(path):
        with paths.open_binary(path) as f:
            yield _RangeReader(path, f)
        return
    try:
        handle = safe_open(str(path), framework="numpy")
    except (SafetensorError, OSError) as e:
        raise SqjaxError(
            f"{path}: truncated or corrupt safetensors file ({e}); re-download or re-export it"
        ) from None
    with handle as f:
        yield f


class _RangeReader:
    """safe_open's keys() and get_tensor() over a file object: the header once, then each
    tensor's byte range (a gs:// file is read in ranges, never downloaded whole)."""

    def __init__(self, path: paths.AnyPath, f: Any) -> None:
        self.path, self.f = path, f
        try:
            (n,) = struct.unpack("<Q", f.read(8))
            self.header = json.loads(f.read(n))
        except (struct.error, ValueError, UnicodeDecodeError) as e:
            raise SqjaxError(
                f"{path}: truncated or corrupt safetensors file ({e}); re-download or re-export it"
            ) from None
        self.header.pop("__metadata__", None)
        self.base = 8 + n

    def keys(self) -> list[str]:
        return list(self.header)

    def get_tensor(self, key: str) -> np.ndarray:
        meta = self.header[key]
        begin, end = meta["data_offsets"]
        self.f.seek(self.base + begin)
        data = self.f.read(end - begin)
        if len(data) != end - begin:
            raise SqjaxError(f"{self.path}: tensor {key!r} is truncated; re-upload the file")
        return np.frombuffer(data, _RAW_DTYPES[meta["dtype"]]).reshape(meta["shape"])


def read_raw(path: Path, key: str) -> np.ndarray:
    """Reads one tensor from the file bytes (for dtypes a safetensors build cannot give numpy)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n))[key]
        begin, end = meta["data_offsets"]
        f.seek(8 + n + begin)
        return np.frombuffer(f.read(end - begin), _RAW_DTYPES[meta["dtype"]]).reshape(meta["shape"])


@contextlib.contextmanager
def tensor_reader(
    model_dir: str | os.PathLike,
) -> Iterator[tuple[list[str], Callable[[str], np.ndarray]]]:
    """Yields (keys, read) over all shards of a directory; files stay open until exit."""
    files = weight_files(model_dir)
    with contextlib.ExitStack() as stack:
        handles = {p: stack.enter_context(_open(p)) for p in sorted(set(files.values()))}

        def read(key: str) -> np.ndarray:
            try:
                return handles[files[key]].get_tensor(key)
            except TypeError:  # a dtype this safetensors build cannot hand to numpy (older bf16)
                return read_raw(files[key], key)
            except SafetensorError as e:
                raise SqjaxError(
                    f"{files[key]}: cannot read tensor {key!r} ({e}); the file is corrupt"
                ) from None

        yield sorted(files), read


def load_hf_dir(
    model_dir: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    rules: Rules = SAMPLE_RULES,
    per_layer: bool = False,
    **overrides: Any,
) -> Decoder:
    """A Decoder from an HF directory; `overrides` replace config fields (dtype, param_dtype)."""
    cfg = load_config(model_dir, **overrides)
    with tensor_reader(model_dir) as (keys, read):
        return load_from_tensors(
            cfg, keys, read, mesh=mesh, rules=rules, source=str(model_dir), per_layer=per_layer
        )


def generation_config(cfg: ModelConfig) -> dict[str, Any] | None:
    """generation_config.json contents from the config's special tokens, or None if it has none."""
    if not cfg.eos_token_ids and cfg.bos_token_id is None:
        return None
    eos = list(cfg.eos_token_ids)
    out = {
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
    }
    if cfg.pad_token_id is not None:
        out["pad_token_id"] = cfg.pad_token_id
    return out


def _write_shards(model: Decoder, out: Path, max_shard_bytes: int) -> None:
    """Writes the model's tensors in shards of at most max_shard_bytes (a lone tensor may exceed
    it); one shard is `model.safetensors`, more get numbered names and an index."""
    shard_keys: list[list[str]] = []
    pending: dict[str, np.ndarray] = {}
    pending_bytes = total = 0

    def flush() -> None:
        shard_keys.append(sorted(pending))
        save_file(pending, str(out / f"shard-{len(shard_keys)}.tmp"), metadata={"format": "pt"})
        pending.clear()

    for key, array in export_tensors(model):
        if pending and pending_bytes + array.nbytes > max_shard_bytes:
            flush()
            pending_bytes = 0
        pending[key] = np.ascontiguousarray(array)
        pending_bytes += array.nbytes
        total += array.nbytes
    flush()
    n = len(shard_keys)
    if n == 1:
        os.replace(out / "shard-1.tmp", out / SINGLE_FILE)
        return
    weight_map = {}
    for i, keys in enumerate(shard_keys, start=1):
        name = f"model-{i:05d}-of-{n:05d}.safetensors"
        os.replace(out / f"shard-{i}.tmp", out / name)
        weight_map.update(dict.fromkeys(keys, name))
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def export_hf(
    model: Decoder,
    out_dir: str | os.PathLike,
    *,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    tokenizer: Any = None,
) -> paths.AnyPath:
    """Writes an HF directory (config, weights in the param dtype, tokenizer if given) that
    transformers loads with `from_pretrained`. Files appear only once all are written; stale
    weight files of an earlier export in out_dir are removed.

    In a multi-process run every process calls this (the weights are gathered together) and
    process 0 alone writes."""
    if jax.process_count() > 1 and jax.process_index() != 0:
        for _ in export_tensors(model):
            pass
        return paths.as_path(out_dir)
    if paths.is_remote(out_dir):
        with paths.staged_dir(out_dir, stale=("model",)) as local:
            export_hf(model, local, max_shard_bytes=max_shard_bytes, tokenizer=tokenizer)
        return paths.as_path(out_dir)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        cfg = model.config
        (tmp / "config.json").write_text(json.dumps(to_hf_config(cfg), indent=2) + "\n")
        gen = generation_config(cfg)
        if gen is not None:
            (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        _write_shards(model, tmp, max_shard_bytes)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        _move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    new = {p.name for p in tmp.iterdir()}
    for old in out_dir.glob("model*.safetensors*"):
        if old.name not in new:
            old.unlink()
    for p in tmp.iterdir():
        os.replace(p, out_dir / p.name)
