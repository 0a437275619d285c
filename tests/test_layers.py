"""The layering: nothing below the stages imports them, the registry or the CLI, so the
framework (sqjax.pipeline) is handed its stages and a new stage touches no framework file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "sqjax"
LOWER = (
    "models",
    "checkpoints",
    "sampling",
    "training",
    "data",
    "grading",
    "pipeline",
    "question",
    "answer",
    "plan",
)
HIGHER = ("sqjax.stages", "sqjax.cli", "sqjax.registry")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, function-level ones included; `from sqjax
    import stages` counts as `sqjax.stages`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _higher(module: str) -> bool:
    return any(module == h or module.startswith(h + ".") for h in HIGHER)


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_never_import_stages_or_cli(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no files under sqjax/{layer}"
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if _higher(module)
    ]
    assert not bad, "\n".join(bad)


def test_the_scan_sees_lazy_imports(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from sqjax import stages\n    import sqjax.cli\n")
    assert [m for _, m in imported_modules(path) if _higher(m)] == ["sqjax.stages", "sqjax.cli"]
