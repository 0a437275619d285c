"""The prompt format of the final SFT and of evaluation, one per run so that training and
evaluation see the same prompt: a chat template by name and an instruction appended to the
query.

The paper fine-tunes base models the way DART-Math does, and evaluates them with DART-Math's
harness: its `alpaca` prompt template around the bare query ("Below is an instruction that
describes a task. ... ### Instruction:\\n{query}\\n\\n### Response:\\n"), shipped here as
sqjax/resources/chat_templates/alpaca.jinja. `model` keeps the tokenizer's own template
(instruct models; an error naming the fix when the checkpoint has none).
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

from sqjax.errors import SqjaxError

MODEL_TEMPLATE = "model"  # the tokenizer's own chat template
DART_MATH_TEMPLATE = "alpaca"
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def template_names() -> list[str]:
    """`model` and every template in sqjax/resources/chat_templates/."""
    folder = resources.files("sqjax") / "resources" / "chat_templates"
    shipped = sorted(
        p.name.removesuffix(".jinja") for p in folder.iterdir() if p.name.endswith(".jinja")
    )
    return [MODEL_TEMPLATE, *shipped]


def check_template(name: str, key: str) -> None:
    """ValueError unless `name` is `model` or a shipped template (config validation)."""
    if name not in template_names():
        raise ValueError(f"{key}={name!r} is not a chat template; choose one of {template_names()}")


def with_template(tokenizer: Any, name: str) -> Any:
    """The tokenizer with chat template `name` (a shallow copy; the argument is unchanged),
    or the tokenizer itself for `model`, which must then have a template of its own."""
    if name == MODEL_TEMPLATE:
        if not getattr(tokenizer, "chat_template", None):
            raise SqjaxError(
                f"tokenizer {tokenizer.name_or_path!r} has no chat template and the config asks "
                f"for the model's own (template: model); set template: {DART_MATH_TEMPLATE} "
                f"(DART-Math's, the paper's) or another of {template_names()[1:]}"
            )
        return tokenizer
    from sqjax.data.asset_tokenizers import chat_template

    out = copy.copy(tokenizer)
    out.chat_template = chat_template(name)
    return out


def query_text(query: str, instruction: str) -> str:
    """The user turn: the query, then a newline and the instruction when there is one."""
    return f"{query.strip()}\n{instruction}" if instruction else query.strip()
