"""The pipeline framework: configs, run directories, resumable sharded stages, reports.

Stage authors declare a `Stage` (sqjax.pipeline.stage) and use `StageContext`
(sqjax.pipeline.context); the shipped stages and their `RunConfig` are in sqjax.registry.
Names are imported lazily so the CLI starts fast.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "RunSettings": "sqjax.pipeline.config",
    "ModelEntry": "sqjax.pipeline.config",
    "Stage": "sqjax.pipeline.stage",
    "Registry": "sqjax.pipeline.stage",
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
    "Registry",
    "RunSettings",
    "ShardInfo",
    "Stage",
    "StageContext",
    "build_report",
    "export_dataset",
    "record_id",
    "run_pipeline",
    "run_stage",
]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sqjax.pipeline' has no attribute {name!r}")
