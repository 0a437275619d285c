"""The quickstart notebook runs top to bottom on the CPU path, and matches its source."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def test_notebook_is_generated_from_its_source():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_quickstart", ROOT / "notebooks" / "make_quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = [(c.cell_type, c.source) for c in module.build().cells]
    actual = [(c.cell_type, c.source) for c in nbformat.read(NOTEBOOK, as_version=4).cells]
    assert actual == expected, "run `python notebooks/make_quickstart.py` after editing its cells"


@pytest.mark.slow
def test_quickstart_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "")  # one CPU device, as on a plain machine
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "pre-query prefix: '<|im_start|>system" in outputs
    assert "P(Yes)" in outputs
    assert "seed questions in" in outputs
