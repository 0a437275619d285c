"""The pipeline framework: configs, run directories, resumable sharded stages, reports.

Stage authors use `StageContext` (sqjax.pipeline.context); names are imported lazily so the
CLI starts fast.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "RunConfig": "sqjax.pipeline.config",
    "ModelEntry": "sqjax.pipeline.config",
    "load_config": "sqjax.pipeline.config",
    "parse_config": "sqjax.pipeline.config",
    "StageContext": "sqjax.pipeline.context",
    "ShardInfo": "sqjax.pipeline.context",
    "run_stage": "sqjax.pipeline.runner",
    "run_pipeline": "sqjax.pipeline.runner",
    "build_report": "sqjax.pipeline.report",
    "export_dataset": "sqjax.pipeline.records",
    "record_id": "sqjax.pipeline.records",
}

__all__ = [
    "ModelEntry",
    "RunConfig",
    "ShardInfo",
    "StageContext",
    "build_report",
    "export_dataset",
    "load_config",
    "parse_config",
    "record_id",
    "run_pipeline",
    "run_stage",
]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sqjax.pipeline' has no attribute {name!r}")
