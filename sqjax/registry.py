"""The shipped pipeline: the stages of sqjax/stages/ handed to the framework (sqjax.pipeline).

`RunConfig` is the run-config dataclass of these stages (RunSettings plus one field per
stage); a config it loads carries the registry (`cfg.stages`), from which the runner, the
report and `sqjax plan` read the stages. The CLI and notebooks load configs through here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sqjax.pipeline import config
from sqjax.stages import STAGES

RunConfig = config.config_type(STAGES, module=__name__)


def load_config(
    path: str | os.PathLike | Sequence[str | os.PathLike], overrides: list[str] = ()
) -> RunConfig:
    """Reads a YAML run config, or a config and overlays deep-merged over it in order
    (`--config A --config B`), and applies `key.path=yaml_value` overrides in order."""
    return config.load_config(path, list(overrides), RunConfig)


def parse_config(text: str, source: str, overrides: list[str] = ()) -> RunConfig:
    """Like load_config, from YAML text; `source` names it in errors."""
    return config.parse_config(text, source, list(overrides), RunConfig)
