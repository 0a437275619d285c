"""`sqjax plan` reads a model's architecture without its weights: config.json from a local or
gs:// directory (the GCS emulator, tests/gcs_emulator.py), or a hub id's preset."""

import json

import pytest
import yaml
from test_plan import TINY

from sqjax import paths
from sqjax.errors import SqjaxError
from sqjax.models.config import ModelConfig
from sqjax.models.hf_config import to_hf_config
from sqjax.plan.abstract import abstract_model, model_config, param_count
from sqjax.registry import parse_config


def _run(model_path: str, tmp_path):
    data = {"run_dir": str(tmp_path / "run"), "models": {"tiny": {"path": model_path}}}
    return parse_config(yaml.safe_dump(data), "test.yaml")


def _check(cfg: ModelConfig) -> None:
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_kv_heads) == (64, 2, 2)
    assert param_count(abstract_model(cfg, "bfloat16", "bfloat16")) > 0


def test_a_gs_model_directory_is_read_through_sqjax_paths(bucket_url, tmp_path):
    model = f"{bucket_url}/tiny"
    paths.write_text(paths.as_path(model) / "config.json", json.dumps(to_hf_config(TINY)))
    run = _run(model, tmp_path)
    _check(model_config(run, "tiny"))
    # a stage's checkpoint of it: a score head for the difficulty regressor
    assert model_config(run, "difficulty:tiny").head == "score"


def test_a_local_model_directory_and_a_missing_one(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text(json.dumps(to_hf_config(TINY)))
    _check(model_config(_run(str(tmp_path / "tiny"), tmp_path), "tiny"))
    with pytest.raises(SqjaxError, match="no config.json there and no preset"):
        model_config(_run(str(tmp_path / "absent"), tmp_path), "tiny")
