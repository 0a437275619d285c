"""Run directories: config-change refusal, --restart, malformed input, upstream checks,
per-shard seeds."""

from __future__ import annotations

import json

import pytest

from sqjax.errors import SqjaxError
from sqjax.pipeline import shards
from sqjax.pipeline.runner import run_stage
from sqjax.pipeline.stage import Stage
from sqjax.registry import parse_config
from sqjax.stages import STAGES


def copy_questions(ctx) -> None:
    """Reads every seed source and writes one row per question, 4 rows per shard."""
    rows = []
    for src in ctx.section.sources:
        rows += [{"question": r[src.field]} for r in ctx.read_input(src.path, [src.field])]
    ctx.map_shards(rows, lambda chunk, info: [{**r, "seed": info.seed} for r in chunk], 4)


def consume(ctx) -> None:
    ctx.map_shards(ctx.read_stage("toy-src"), lambda chunk, info: chunk, 100)


@pytest.fixture
def toy_stages():
    STAGES.register(Stage("toy-src", "reads JSONL", section="seed_questions", run=copy_questions))
    STAGES.register(
        Stage("toy-dst", "reads toy-src", inputs=("toy-src",), section="qpo_pairs", run=consume)
    )
    yield
    STAGES.unregister("toy-src")
    STAGES.unregister("toy-dst")


def _config(path, overrides: tuple[str, ...] = ()):
    text = f"seed: 3\nseed_questions:\n  sources: [{{path: '{path}', field: q}}]\n"
    return parse_config(text, "test.yaml", list(overrides))


def _write(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_rows_seeds_and_manifest(tmp_path, toy_stages):
    data = _write(tmp_path / "q.jsonl", [json.dumps({"q": f"question {i}"}) for i in range(10)])
    m = run_stage(_config(data), "toy-src", run_dir=tmp_path / "run")
    rows = list(shards.iter_rows(tmp_path / "run" / "toy-src"))
    assert [r["question"] for r in rows] == [f"question {i}" for i in range(10)]
    assert sorted(p.name for p in (tmp_path / "run" / "toy-src").glob("part-*.jsonl")) == [
        "part-00000-00000.jsonl",
        "part-00000-00001.jsonl",
        "part-00000-00002.jsonl",
    ]
    seeds = [r["seed"] for r in rows]
    assert seeds[0] == seeds[3] != seeds[4] == seeds[7] != seeds[8]
    assert seeds[0] == shards.shard_seed(3, "toy-src", "", 0)
    assert m["finished"] and m["rows_in"] == 10 and m["rows_out"] == 10
    assert m["steps"][""] == {"rows_in": 10, "shard_size": 4, "shards": 3, "rows_out": 10}


def test_shard_seed_is_stable_and_distinct():
    # sha256("0/gen-questions//0") first 8 bytes little-endian, shifted right by one
    import hashlib

    digest = hashlib.sha256(b"0/gen-questions//0").digest()
    assert shards.shard_seed(0, "gen-questions", "", 0) == int.from_bytes(digest[:8], "little") >> 1
    seeds = {shards.shard_seed(0, "gen-questions", "", i) for i in range(10_000)}
    assert len(seeds) == 10_000 and all(0 <= s < 2**63 for s in seeds)


def test_jax_key_keeps_all_64_bits():
    import jax

    from sqjax.pipeline.context import ShardInfo

    a, b = ShardInfo(0, 0, 5, "s", ""), ShardInfo(0, 0, 5 + 2**40, "s", "")
    assert jax.random.key_data(a.jax_key()).tolist() == [0, 5]
    assert jax.random.key_data(b.jax_key()).tolist() == [2**8, 5]


@pytest.mark.parametrize(
    "lines, where",
    [
        (['{"q": "ok"}', '{"q": "ok"', '{"q": "x"}'], ":2: not valid JSON"),
        (['{"q": "ok"}', '{"q": "ok"}', '{"other": 1}'], ":3: missing field 'q'"),
        ([], ":1: file has no rows"),
    ],
)
def test_malformed_input_names_file_and_line_and_is_not_finished(
    tmp_path, toy_stages, lines, where
):
    data = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(SqjaxError, match=f"{data}{where}"):
        run_stage(_config(data), "toy-src", run_dir=tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "toy-src" / "manifest.json").read_text())
    assert manifest["finished"] is False
    with pytest.raises(SqjaxError, match="toy-src, which has not finished"):
        run_stage(_config(data), "toy-dst", run_dir=tmp_path / "run")


def test_changed_config_is_refused_and_restart_moves_output_aside(tmp_path, toy_stages):
    data = _write(tmp_path / "q.jsonl", [json.dumps({"q": f"q{i}"}) for i in range(5)])
    run = tmp_path / "run"
    first = run_stage(_config(data), "toy-src", run_dir=run)
    again = run_stage(_config(data), "toy-src", run_dir=run)  # finished: skipped
    assert again["finished_at"] == first["finished_at"]
    run_stage(_config(data), "toy-dst", run_dir=run)

    with pytest.raises(SqjaxError, match=r"different config \(changed: seed\).*--restart"):
        run_stage(_config(data, ["seed=4"]), "toy-src", run_dir=run)
    # mesh and run_dir do not change what a stage makes: a resume on another slice is fine
    run_stage(_config(data, ["mesh.data=2"]), "toy-src", run_dir=run)

    run_stage(_config(data, ["seed=4"]), "toy-src", run_dir=run, restart=True)
    old = sorted(run.glob("toy-src.old-*"))
    assert len(old) == 1
    assert [r["question"] for r in shards.iter_rows(old[0])] == [f"q{i}" for i in range(5)]
    assert json.loads((old[0] / "manifest.json").read_text())["config"]["seed"] == 3
    assert json.loads((run / "toy-src" / "manifest.json").read_text())["config"]["seed"] == 4
    with pytest.raises(SqjaxError, match="made from other output of toy-src"):
        run_stage(_config(data), "toy-dst", run_dir=run)


def test_files_without_manifest_are_refused(tmp_path, toy_stages):
    data = _write(tmp_path / "q.jsonl", ['{"q": "a"}'])
    (tmp_path / "run" / "toy-src").mkdir(parents=True)
    (tmp_path / "run" / "toy-src" / "part-00000-00000.jsonl").write_text('{"question": "x"}\n')
    with pytest.raises(SqjaxError, match="no manifest.json; rerun with --restart"):
        run_stage(_config(data), "toy-src", run_dir=tmp_path / "run")


def test_changed_input_rows_for_a_done_shard_are_refused(tmp_path, toy_stages):
    data = _write(tmp_path / "q.jsonl", [json.dumps({"q": f"q{i}"}) for i in range(8)])
    run = tmp_path / "run"
    run_stage(_config(data), "toy-src", run_dir=run)
    manifest = run / "toy-src" / "manifest.json"
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "finished": False}))  # as if killed before the end
    _write(data, [json.dumps({"q": f"changed {i}"}) for i in range(8)])
    with pytest.raises(SqjaxError, match="part-00000-00000.jsonl was made from other input"):
        run_stage(_config(data), "toy-src", run_dir=run)


def test_changed_input_size_is_refused(tmp_path, toy_stages):
    data = _write(tmp_path / "q.jsonl", [json.dumps({"q": f"q{i}"}) for i in range(8)])
    run = tmp_path / "run"
    run_stage(_config(data), "toy-src", run_dir=run)
    manifest = run / "toy-src" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "finished": False}))
    _write(data, [json.dumps({"q": f"q{i}"}) for i in range(5)])
    with pytest.raises(SqjaxError, match=r"step '': input changed since the last attempt"):
        run_stage(_config(data), "toy-src", run_dir=run)
