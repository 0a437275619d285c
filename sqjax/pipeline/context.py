"""The API stage authors write against: `StageContext` and `ShardInfo`.

A stage is `run(ctx)`. Long work goes through `ctx.map_shards`, which makes it resumable:
a stage killed at any moment and rerun produces exactly the rows of an uninterrupted run,
provided `fn` is a deterministic function of its rows and `info.seed`.

One bad row must not stop a run of a million: a stage that can attribute a failure to its row
records it with `info.fail(row_id, reason, detail)` and goes on; `ctx.map_rows` does that for
per-row work (an exception or a per-row timeout becomes a recorded failure). Failed rows are
counted as drops under their reason and listed, with id and detail, in the manifest's
`failed_rows`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqjax import assets
from sqjax.data.jsonl import atomic_write_json, atomic_write_jsonl, read_jsonl
from sqjax.errors import SqjaxError
from sqjax.paths import AnyPath
from sqjax.pipeline import shards as sh
from sqjax.pipeline.config import ModelEntry, RunSettings, StageView, resolve_model
from sqjax.pipeline.rundir import step_dir
from sqjax.pipeline.sync import StageSync
from sqjax.progress import Progress


@dataclass
class ShardInfo:
    """One chunk of `map_shards` input. `seed` is a 63-bit int derived from (run seed, stage,
    step, index), identical on every machine; use `jax_key()` for JAX sampling."""

    index: int
    start: int  # position of the chunk's first row in the whole input
    seed: int
    stage: str
    step: str
    stats: sh.ShardStats = field(default_factory=sh.ShardStats)

    def drop(self, reason: str, n: int = 1) -> None:
        """Counts rows this shard dropped, by reason (shown in the report)."""
        self.stats.drops = self.stats.drops or {}
        self.stats.drops[reason] = self.stats.drops.get(reason, 0) + n

    def add_tokens(self, n: int) -> None:
        """Counts generated tokens (the cost table)."""
        self.stats.tokens += n

    def fail(self, row_id: object, reason: str, detail: str = "") -> None:
        """Records a row this shard could not process (kept out of the output): counted as a
        drop under `reason` and listed with its id and `detail` in the manifest."""
        self.drop(reason)
        self.stats.failed = self.stats.failed or []
        self.stats.failed.append({"id": row_id, "reason": reason, "detail": detail[:500]})

    def jax_key(self) -> Any:
        """A threefry PRNG key holding all 64 bits of `seed` (jax.random.key(seed) keeps 32)."""
        import jax
        import numpy as np

        data = np.array([self.seed >> 32, self.seed & 0xFFFFFFFF], dtype=np.uint32)
        return jax.random.wrap_key_data(data, impl="threefry2x32")


def _guarded(
    fn: Callable[[dict, ShardInfo], list[dict]],
    row: dict,
    info: ShardInfo,
    position: int,
    timeout_s: float | None,
) -> list[dict]:
    """fn(row, info), or [] with the failure recorded in `info`."""
    row_id = row.get("id", position)
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            result["rows"] = fn(row, info)
        except Exception as e:  # noqa: BLE001 (one bad row is recorded, not fatal)
            result["error"] = f"{type(e).__name__}: {e}"

    if timeout_s is None:
        call()
    else:
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            info.fail(row_id, "timeout", f"no result within {timeout_s:g} s")
            return []
    if "error" in result:
        info.fail(row_id, "error", result["error"])
        return []
    return list(result["rows"])


class ShardOutput:
    """The rows a `map_shards` call produced, read lazily from its shards in order."""

    def __init__(self, directory: AnyPath) -> None:
        self.directory = directory

    def __iter__(self) -> Iterator[dict]:
        return sh.iter_rows(self.directory)

    def rows(self) -> list[dict]:
        return list(self)


class StageContext:
    """Everything a stage's `run(ctx)` needs; see the module docstring."""

    def __init__(
        self,
        name: str,
        config: RunSettings | StageView,
        section: Any,
        run_dir: AnyPath,
        manifest: dict,
        inputs: Sequence[str],
        process_index: int = 0,
        process_count: int = 1,
        sync: StageSync | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.section = section  # this stage's settings, e.g. config.gen_questions
        self.run_dir = run_dir
        self.stage_dir = run_dir / name
        self.artifacts_dir = self.stage_dir / "artifacts"
        self.process_index = process_index
        self.process_count = process_count
        self.sync = sync or StageSync(name, process_index, process_count)
        self.log = logging.getLogger(f"sqjax.{name}")
        self.manifest = manifest  # written by the runner; process 0 only
        self.inputs = tuple(inputs)
        self.rows_read = 0
        self.tokens = 0  # tokens counted outside map_shards (e.g. training), this attempt
        self.drops: Counter[str] = Counter()
        self.save_manifest: Callable[..., None] = lambda **_: None
        self._steps_used: set[str] = set()

    # --- reading -------------------------------------------------------------------------
    def read_stage(self, name: str) -> list[dict]:
        """All rows of a finished upstream stage, shards in order."""
        return list(self.iter_stage(name))

    def iter_stage(self, name: str) -> Iterator[dict]:
        """Like read_stage, streaming."""
        if name not in self.inputs:
            raise ValueError(
                f"stage {self.name} reads {name!r}, not among its inputs "
                f"{self.inputs}; declare it in the stage registry"
            )
        for row in sh.iter_rows(self.run_dir / name):
            self.rows_read += 1
            yield row

    def read_input(self, path: str, required: Sequence[str] = ()) -> list[dict]:
        """Rows of a JSONL input file (local, gs:// or `asset:`); errors name file and line,
        an empty file is an error."""
        resolved = assets.resolve(path)
        rows = list(read_jsonl(resolved, required))
        if not rows:
            raise SqjaxError(f"{resolved}:1: file has no rows; point the config at a JSONL file")
        self.rows_read += len(rows)
        return rows

    def model_entry(self, name: str) -> ModelEntry:
        """A model by config name or `<stage>:<name>`, `asset:` paths resolved to files."""
        return resolve_model(self.config, self.run_dir, name)

    # --- accounting ----------------------------------------------------------------------
    def add_tokens(self, n: int) -> None:
        """Counts tokens processed outside map_shards (e.g. training)."""
        self.tokens += n

    def drop(self, reason: str, n: int = 1) -> None:
        """Counts rows dropped outside map_shards (e.g. a global dedup)."""
        self.drops[reason] += n

    def declare_row_stats(self, *fields: str) -> None:
        """Numeric row fields of the output to plot as histograms in the report."""
        stats = self.manifest.setdefault("row_stats", [])
        stats.extend(f for f in fields if f not in stats)

    def set_metric(self, key: str, value: Any) -> None:
        """A JSON value kept in the manifest; eval writes `scores: {model: {bench: acc}}`."""
        self.manifest.setdefault("metrics", {})[key] = value
        self.save_manifest()

    # --- sharded, resumable work ---------------------------------------------------------
    def map_rows(
        self,
        items: Sequence[dict],
        fn: Callable[[dict, ShardInfo], list[dict]],
        shard_size: int,
        step: str = "",
        desc: str | None = None,
        row_timeout_s: float | None = None,
    ) -> ShardOutput:
        """`map_shards` for per-row work: `fn(row, info)` returns the row's output rows. A row
        whose `fn` raises (an Exception) or runs past `row_timeout_s` is recorded as failed
        (`info.fail`, reason `error` or `timeout`, id = the row's `id` or its position) and the
        shard goes on. A timed-out call is abandoned in its daemon thread, not killed: use the
        timeout for work that may hang, not as a CPU limit."""

        def shard(rows: list[dict], info: ShardInfo) -> list[dict]:
            out: list[dict] = []
            for i, row in enumerate(rows):
                out.extend(_guarded(fn, row, info, info.start + i, row_timeout_s))
            return out

        return self.map_shards(items, shard, shard_size, step, desc)

    def map_shards(
        self,
        items: Sequence[dict],
        fn: Callable[[list[dict], ShardInfo], list[dict]],
        shard_size: int,
        step: str = "",
        desc: str | None = None,
    ) -> ShardOutput:
        """Applies `fn` to consecutive chunks of `items` and writes each result as a shard.

        Chunks whose shard exists are skipped (after checking their input is unchanged);
        chunk i belongs to process i % process_count. `step=""` writes the stage's output;
        a named step writes RUN/<stage>/steps/<step>/ for intermediate results.
        """
        if step in self._steps_used:
            raise ValueError(f"map_shards step {step!r} used twice in stage {self.name}")
        self._steps_used.add(step)
        out_dir = step_dir(self.stage_dir, step)
        bounds = sh.chunk_bounds(len(items), shard_size)
        self._check_step(step, len(items), shard_size, len(bounds))
        sh.remove_stale_temp(out_dir, self.process_index)
        done = sh.list_shards(out_dir)
        mine = [i for i in range(len(bounds)) if i % self.process_count == self.process_index]
        todo = [i for i in mine if i not in done]
        for i in sorted(set(mine) & set(done)):
            self._check_done_chunk(done[i], items[slice(*bounds[i])])
        with Progress(
            len(items),
            desc or f"{self.name} {step}".strip(),
            initial=sum(bounds[i][1] - bounds[i][0] for i in done),
        ) as bar:
            for i in todo:
                stats = self._run_chunk(fn, items, bounds[i], i, step, out_dir)
                bar.update(stats.rows_in, stats.tokens)
                self.save_manifest()
        if self.process_count > 1:  # every process continues with the whole output
            self._wait_for_chunks(out_dir, len(bounds))
        return ShardOutput(out_dir)

    def _run_chunk(
        self,
        fn: Callable,
        items: Sequence[dict],
        bound: tuple[int, int],
        index: int,
        step: str,
        out_dir: AnyPath,
    ) -> sh.ShardStats:
        rows = list(items[slice(*bound)])
        seed = sh.shard_seed(self.config.seed, self.name, step, index)
        stats = sh.ShardStats(rows_in=len(rows), input_hash=sh.rows_hash(rows))
        info = ShardInfo(index, bound[0], seed, self.name, step, stats)
        t0 = time.monotonic()
        out = fn(rows, info)
        if not isinstance(out, list) or not all(isinstance(r, dict) for r in out):
            raise TypeError(f"stage {self.name}: map_shards fn must return a list of dicts")
        stats.rows_out, stats.wall_s = len(out), time.monotonic() - t0
        shard = out_dir / sh.shard_name(self.process_index, index)
        atomic_write_json(sh.stats_path(shard), stats.to_json())
        atomic_write_jsonl(shard, out)  # the commit point
        return stats

    def _check_step(self, step: str, n_items: int, shard_size: int, n_shards: int) -> None:
        meta = {"rows_in": n_items, "shard_size": shard_size, "shards": n_shards}
        steps = self.manifest.setdefault("steps", {})
        old = {k: v for k, v in steps.get(step, {}).items() if k in meta}
        if old and old != meta:
            raise SqjaxError(
                f"stage {self.name} step {step!r}: input changed since the last attempt "
                f"({old} -> {meta}); rerun with --restart"
            )
        if not old:
            steps[step] = meta
            self.save_manifest(force=True)  # later attempts check their input against it

    def _check_done_chunk(self, shard: AnyPath, rows: Sequence[dict]) -> None:
        if sh.read_stats(shard).get("input_hash") != sh.rows_hash(rows):
            raise SqjaxError(
                f"{shard} was made from other input rows than this run gives it (is the "
                f"stage's input deterministic?); rerun with --restart"
            )

    def _wait_for_chunks(self, out_dir: AnyPath, n_shards: int) -> None:
        said = 0.0
        while len(sh.list_shards(out_dir)) < n_shards:
            self.sync.check()  # a failed process writes no more shards
            if time.monotonic() - said >= 60:
                self.log.info("waiting for other processes' shards in %s", out_dir)
                said = time.monotonic()
            time.sleep(1)
