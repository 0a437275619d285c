"""JSONL reading with line-numbered errors, and atomic writes."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

from sqjax import paths
from sqjax.errors import SqjaxError


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> Iterator[dict]:
    """Yields the rows of a JSONL file; blank lines are skipped.

    Raises SqjaxError naming the file and line for a line that is not a JSON object or
    lacks a required field.
    """
    path = paths.as_path(path)
    if not path.is_file():
        raise SqjaxError(f"{path}: no such file; check the path in your config")
    required = tuple(required)
    with paths.open_binary(path, paths.LINE_BUFFER_BYTES) as f:
        for lineno, line in _decoded_lines(f, path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SqjaxError(f"{path}:{lineno}: not valid JSON ({e.msg}); fix or remove that line") from None
            if not isinstance(row, dict):
                raise SqjaxError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in required if k not in row]
            if missing:
                raise SqjaxError(
                    f"{path}:{lineno}: missing field {missing[0]!r} (row has {sorted(row)}); "
                    f"add it or point the config at the right field name"
                )
            yield row


def not_utf8(
    path: object, data: bytes, error: UnicodeDecodeError, base: int = 0, first_line: int = 1
) -> SqjaxError:
    """The one-line error for bytes that are not UTF-8: file, line, byte offset and the byte.
    `data` starts at byte `base` of the file, on line `first_line`."""
    line = first_line + data.count(b"\n", 0, error.start)
    bad = data[error.start : error.start + 1].hex()
    return SqjaxError(
        f"{path}:{line}: not UTF-8 text (byte 0x{bad} at byte offset {base + error.start}); "
        "re-save the file as UTF-8 or remove that byte"
    )


def _decoded_lines(f: Any, path: object) -> Iterator[tuple[int, str]]:
    """(line number, text) of a binary file object's lines; a bad byte is a located error."""
    offset = 0
    for lineno, raw in enumerate(f, start=1):
        try:
            yield lineno, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise not_utf8(path, raw, e, offset, lineno) from None
        offset += len(raw)


def load_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> list[dict]:
    """Reads a whole JSONL file (see read_jsonl)."""
    return list(read_jsonl(path, required))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes data to path (local or gs://) so that readers see either the old file or the
    new one (sqjax.paths.write_bytes)."""
    paths.write_bytes(path, data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None (JSON null), at any depth."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def strict_dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that writes strict JSON: NaN and infinities become null (other tools reject
    the bare `NaN`/`Infinity` that json.dumps writes by default)."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(finite(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (NaN and infinities as null), written atomically."""
    atomic_write_text(path, strict_dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Writes rows as strict JSONL (NaN and infinities as null) atomically; returns the number
    of rows."""
    lines = [strict_dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)
