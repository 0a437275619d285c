"""Non-UTF-8 bytes in a JSONL input or a YAML config are one-line errors naming the file, the
line and the byte offset (issue 17 item 5), not a UnicodeDecodeError traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqjax.data.jsonl import load_jsonl
from sqjax.errors import SqjaxError
from sqjax.registry import load_config


def test_jsonl_bad_byte_names_file_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "questions.jsonl"
    good = b'{"question": "caf\xc3\xa9?"}\n'  # valid UTF-8 (an e acute)
    path.write_bytes(good + b'{"question": "ok"}\n{"question": "bad \xff byte"}\n')
    offset = len(good) + len(b'{"question": "ok"}\n') + len(b'{"question": "bad ')
    with pytest.raises(SqjaxError) as e:
        load_jsonl(path)
    message = str(e.value)
    assert message.startswith(f"{path}:3: ")
    assert f"byte offset {offset}" in message and "0xff" in message
    assert "\n" not in message


def test_jsonl_rows_before_a_bad_line_are_read(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\n')
    assert load_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_bytes(b'{"a": 1}\n{"a": "\xc3"}\n')  # a cut multi-byte sequence
    with pytest.raises(SqjaxError, match=r"q.jsonl:2: .*byte offset 16"):
        load_jsonl(path)


def test_yaml_config_bad_byte_names_file_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(b"run_dir: runs/x\nseed: 1\nmodels: {sm\xe9ol: {path: /m}}\n")
    with pytest.raises(SqjaxError) as e:
        load_config(path)
    message = str(e.value)
    assert message.startswith(f"{path}:3: ")
    assert "byte offset 35" in message and "0xe9" in message and "\n" not in message
