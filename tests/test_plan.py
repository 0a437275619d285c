"""`sqjax plan`: a tiny model's programs compiled for a v5e:2x2 slice without a TPU (libtpu's
deviceless compile; the `tpu` extra), memory figures, and a batch too large for HBM reported
with a fix that plan compiled."""

import json

import pytest
import yaml

pytest.importorskip("libtpu", reason="needs the TPU extra: pip install -e '.[tpu]'")

from sqjax.cli import cli
from sqjax.models.config import ModelConfig
from sqjax.models.hf_config import to_hf_config
from sqjax.plan import plan
from sqjax.plan.hlo import loop_scale
from sqjax.plan.report import failure_lines, run_report_section, text, to_json
from sqjax.registry import parse_config

TINY = ModelConfig(
    family="qwen2",
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=16,
    qkv_bias=True,
    max_position_embeddings=8192,
)


def _config(tmp_path, **sections) -> str:
    model = tmp_path / "tiny"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps(to_hf_config(TINY)))
    data = {"run_dir": str(tmp_path / "run"), "models": {"tiny": {"path": str(model)}}}
    data.update(sections)
    return yaml.safe_dump(data)


def _run(tmp_path, stage: str, **sections):
    cfg = parse_config(_config(tmp_path, **sections), "test.yaml")
    return plan(cfg, "v5e-4", [stage], fix_tries=4, log=lambda _: None)


def test_train_and_decode_compile_with_positive_figures(tmp_path):
    qft = _run(tmp_path, "qft", qft={"models": ["tiny"], "batch_size": 8, "seq_len": 64})
    (train,) = qft.programs
    f = train.figures
    assert f.fits and f.argument_bytes > 0 and f.output_bytes > 0 and f.total_bytes > 0
    assert f.flops > 0 and f.bytes_accessed > 0 and f.compile_seconds > 0
    assert train.hours > 0 and "flops_vs_model" in train.efficiency
    program = to_json(qft)["programs"][0]
    assert program["attention_kernel"] == f.attention_kernel == "xla"  # 64 tokens: no splash
    assert program["bound"] in ("flops", "bytes")
    sample = _run(
        tmp_path,
        "gen-questions",
        gen_questions={
            "generators": ["tiny"],
            "num_questions": 1000,
            "batch_size": 8,
            "max_tokens": 64,
        },
    )
    insert, decode = sample.programs
    assert insert.job.kind == "insert" and decode.job.kind == "decode"
    assert all(p.figures.fits and p.figures.total_bytes > 0 for p in sample.programs)
    # the decode loop runs `chunk` steps: its body's figures are scaled by that trip count
    assert decode.job.shape.chunk in decode.figures.trip_counts
    assert decode.figures.flops > decode.figures.xla_flops
    assert decode.efficiency["bytes_vs_min"] > 0
    assert "gen-questions" in text(sample)


def test_oversized_batch_does_not_fit_and_a_fix_is_compiled(tmp_path):
    # 2M-token train steps of a tiny model without remat: activations past a v5e chip's 15.75 GiB
    result = _run(
        tmp_path,
        "qft",
        qft={"models": ["tiny"], "batch_size": 512, "seq_len": 4096, "remat": "none"},
    )
    (train,) = result.programs
    assert not train.figures.fits
    assert train.figures.total_bytes > train.figures.capacity_bytes
    assert train.fix is not None and train.fix_figures.fits
    (line,) = failure_lines(result)
    assert line.startswith("qft: train of tiny needs") and "fits at" in line


def test_cli_exits_nonzero_with_one_line_per_failing_program(tmp_path):
    from click.testing import CliRunner

    path = tmp_path / "cfg.yaml"
    path.write_text(
        _config(
            tmp_path, qft={"models": ["tiny"], "batch_size": 512, "seq_len": 4096, "remat": "none"}
        )
    )
    out = tmp_path / "plan.json"
    res = CliRunner().invoke(
        cli,
        [
            "plan",
            "--config",
            str(path),
            "--topology",
            "v5e-4",
            "--stage",
            "qft",
            "--json",
            str(out),
            "--fix-tries",
            "0",
        ],
    )
    assert res.exit_code == 1, res.output
    assert "does not fit: qft: train of tiny needs" in res.output
    data = json.loads(out.read_text())
    assert data["programs"][0]["figures"]["fits"] is False and data["versions"]["libtpu"]
    assert data["programs"][0]["bound"] is None  # no time for a program that does not fit
    # the run report's Plan section reads what plan left in RUN/plan/
    assert json.loads((tmp_path / "run" / "plan" / "v5e-4.json").read_text()) == data
    section = "\n".join(run_report_section(tmp_path / "run"))
    assert "| qft | **no**" in section and "v5e-4: qft: train of tiny needs" in section


def test_loop_scale_counts_a_scan_body_by_its_trip_count():
    import jax
    import jax.numpy as jnp

    def f(w, x):
        return jax.lax.scan(lambda x, wi: (jnp.tanh(x @ wi), None), x, w)[0]

    w = jnp.zeros((6, 32, 32))
    hlo = jax.jit(f).lower(w, jnp.zeros((8, 32))).compile().as_text()
    scale = loop_scale(hlo)
    assert 6 in scale.trip_counts and scale.flops == pytest.approx(6.0)


@pytest.mark.slow
def test_paper_qft_on_v5p_8_needs_fsdp_and_plan_finds_it():
    """The paper config's QFT train step of Qwen2-Math-7B on v5p-8 (two 7B compiles, ~3-5 min
    on 2 busy cores): data-parallel float32 state does not fit a 95.74 GiB chip; FSDP does."""
    from pathlib import Path

    from sqjax.registry import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(
        root / "configs" / "paper" / "scalequest.yaml", ["qft.models=[qwen2-math-instruct]"]
    )
    result = plan(cfg, "v5p-8", ["qft"], fix_tries=1, log=lambda _: None)
    (train,) = result.programs
    assert not train.figures.fits and train.figures.total_bytes > 90 * 2**30
    assert train.fix == "stage_mesh.qft: {data: 1, fsdp: -1, tensor: 1}" and train.fix_figures.fits
    assert train.fix_changes == {"stage_mesh.qft": {"data": 1, "fsdp": -1, "tensor": 1}}
    assert 0 < train.fix_figures.total_bytes < train.figures.capacity_bytes


def test_a_scan_over_stacked_layers_reads_one_layer_per_iteration():
    """hlo.py counts a layer's slice of the stacked weights at its own size: reading every
    layer at the stacked size each iteration would be 6 x the weights."""
    import jax
    import jax.numpy as jnp

    def f(w, x):
        return jax.lax.scan(lambda x, wi: (jnp.tanh(x @ wi), None), x, w)[0]

    w = jnp.zeros((6, 256, 256))
    scale = loop_scale(jax.jit(f).lower(w, jnp.zeros((8, 256))).compile().as_text())
    assert w.nbytes <= scale.hlo_bytes < 4 * w.nbytes


def _train_temp_bytes(shape, mesh_sizes) -> float:
    """Temporaries of WIDE's step with XLA attention: under splash the kernel's shard_map
    keeps each device's rows already (275 MB per device with or without constrain_rows)."""
    from sqjax.plan import programs as P
    from sqjax.plan.topology import devices
    from sqjax.sharding import make_mesh

    mesh = make_mesh(*mesh_sizes, devices=devices("v5e-4"))
    step = P.regressor_step if shape.loss == "regression" else P.train_step
    cfg = WIDE.replace(attention="xla")
    return step(cfg, mesh, shape).compile().memory_analysis().temp_size_in_bytes


WIDE = TINY.replace(hidden_size=512, intermediate_size=1024, num_heads=8, head_dim=64)


@pytest.mark.slow  # two compiles of a 4-layer D=512 step: 15 min at load 12 here
def test_activations_keep_only_their_rows_on_each_device(monkeypatch):
    """The decoder constrains each layer's activations to their rows (sqjax.sharding
    .constrain_rows) under the train step's mesh: with FSDP, XLA would otherwise keep every
    row on every device with the embedding split."""
    from sqjax.models import decoder
    from sqjax.plan.programs import TrainShape

    shape = TrainShape("sft", 16, 1024, remat="none")
    constrained = _train_temp_bytes(shape, (1, 4, 1))
    monkeypatch.setattr(decoder, "constrain_rows", lambda x: x)
    free = _train_temp_bytes(shape, (1, 4, 1))
    assert constrained < 0.9 * free  # 599 vs 712 MB measured (jax 0.10.2, libtpu 0.0.42.1)


@pytest.mark.slow  # two compiles of a 4-layer D=512 step: 15 min at load 12 here
def test_the_regressor_step_recomputes_activations_with_remat():
    """The difficulty regressor trains with the trainer's remat (its default: full)."""
    from sqjax.plan.programs import TrainShape
    from sqjax.stages.difficulty import DifficultyConfig

    def temp(remat: str) -> float:
        return _train_temp_bytes(TrainShape("regression", 16, 1024, remat=remat), (1, 4, 1))

    assert DifficultyConfig().remat == "full"
    assert temp("full") < 0.6 * temp("none")
