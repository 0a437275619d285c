"""JSONL shards: names, per-shard seeds, per-shard stats files, reading in order.

A shard `part-<process:05d>-<chunk:05d>.jsonl` is written atomically after its stats file
`part-...stats.json`; the shard file's existence is the commit, so a chunk is either done
(both files) or redone. A chunk counts as done whichever process wrote it, so a run may
resume with a different number of processes. The same holds in a gs:// run directory, where
each file is one object upload (see sqjax.paths).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqjax import paths
from sqjax.data.jsonl import read_jsonl
from sqjax.errors import SqjaxError
from sqjax.paths import AnyPath

_SHARD = re.compile(r"^part-(\d{5,})-(\d{5,})\.jsonl$")


def shard_name(process: int, chunk: int) -> str:
    return f"part-{process:05d}-{chunk:05d}.jsonl"


def stats_path(shard: AnyPath) -> AnyPath:
    return shard.with_name(shard.name.removesuffix(".jsonl") + ".stats.json")


def shard_seed(run_seed: int, stage: str, step: str, chunk: int) -> int:
    """A 63-bit seed from (run seed, stage, step, chunk), the same on every machine."""
    digest = hashlib.sha256(f"{run_seed}/{stage}/{step}/{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def rows_hash(rows: Sequence[dict]) -> str:
    """A hash of a list of rows, to notice input that changed between runs."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def chunk_bounds(n_items: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, stop) of each chunk; deterministic in (n_items, shard_size)."""
    if shard_size <= 0:
        raise ValueError(f"shard_size={shard_size} must be > 0")
    return [(s, min(s + shard_size, n_items)) for s in range(0, n_items, shard_size)]


def list_shards(directory: AnyPath) -> dict[int, AnyPath]:
    """chunk index -> shard file in a directory; two files for one chunk is an error."""
    found: dict[int, AnyPath] = {}
    for name in paths.list_names(directory):
        m = _SHARD.match(name)
        if not m:
            continue
        path = directory / name
        chunk = int(m.group(2))
        if chunk in found:
            raise SqjaxError(
                f"{directory}: chunk {chunk} has two shards ({found[chunk].name}, {path.name}); "
                f"outputs of two runs were mixed, rerun the stage with --restart"
            )
        found[chunk] = path
    return found


def iter_rows(directory: AnyPath) -> Iterator[dict]:
    """Rows of every shard in chunk order (errors name file and line)."""
    shards = list_shards(directory)
    for chunk in sorted(shards):
        yield from read_jsonl(shards[chunk])


def remove_stale_temp(directory: AnyPath, process: int) -> None:
    """Deletes this process's half-written temporary files left by a killed attempt
    (atomic writes name them `.part-<process>-...tmp`); finished shards are never touched.
    Object storage has none: an upload cut short leaves no object."""
    if not paths.is_remote(directory) and directory.is_dir():
        for path in directory.glob(f".part-{process:05d}-*.tmp"):
            path.unlink(missing_ok=True)


def read_stats(shard: AnyPath) -> dict:
    path = stats_path(shard)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SqjaxError(f"{path}: unreadable shard stats ({e}); rerun with --restart") from None


@dataclass
class ShardStats:
    """Counters one shard adds to the manifest; saved beside the shard."""

    rows_in: int = 0
    rows_out: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    input_hash: str = ""
    drops: dict[str, int] | None = None
    failed: list[dict] | None = None  # rows a stage could not process: {"id", "reason", ...}

    def to_json(self) -> dict:
        return {**self.__dict__, "drops": dict(self.drops or {}), "failed": list(self.failed or [])}


def output_hash(directory: AnyPath) -> str:
    """A hash over the shard files' names and bytes, in chunk order."""
    h = hashlib.sha256()
    shards = list_shards(directory)
    for chunk in sorted(shards):
        h.update(f"{chunk}\n".encode())
        h.update(shards[chunk].read_bytes())
    return h.hexdigest()
