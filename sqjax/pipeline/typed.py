"""Plain YAML values -> frozen dataclasses, type-checked.

Every error names the key path (`gen_questions.top_p`), where the value came from (a file or a
`--set` option) and the expected type, so a typo in a config for a days-long run fails in the
first second instead of at the stage that reads it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from sqjax.errors import SqjaxError


def build(cls: type, data: Any, source: str, path: str = "") -> Any:
    """Builds an instance of dataclass `cls` from nested dicts/lists/scalars.

    Raises SqjaxError naming `source`, the key path and the expected type for an unknown key,
    a missing required key, a wrong type or a value the dataclass's checks reject.
    """
    return _convert(cls, data, source, path)


def type_name(tp: Any) -> str:
    """A short readable name for a type hint: `list[str]`, `float`, `'all' | 'question'`."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in get_args(tp))}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _wrong(tp: Any, value: Any, source: str, path: str) -> SqjaxError:
    return SqjaxError(
        f"{source}: key {path or '<top level>'!r}: expected {type_name(tp)}, "
        f"got {value!r} ({type(value).__name__})"
    )


def _convert(tp: Any, value: Any, source: str, path: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, source, path)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, source, path)
    if origin is Literal:
        if value in get_args(tp) and not isinstance(value, bool):
            return value
        raise _wrong(tp, value, source, path)
    if origin is list:
        if not isinstance(value, list):
            raise _wrong(tp, value, source, path)
        (item,) = get_args(tp)
        return [_convert(item, v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(tp, value, source, path)
        _, item = get_args(tp)
        for k in value:
            if not isinstance(k, str):
                raise _wrong(str, k, source, _join(path, k))
        return {k: _convert(item, v, source, _join(path, k)) for k, v in value.items()}
    return _convert_scalar(tp, value, source, path)


def _convert_scalar(tp: Any, value: Any, source: str, path: str) -> Any:
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and type(value) is tp:
        return value
    if tp is type(None) and value is None:
        return None
    raise _wrong(tp, value, source, path)


def _convert_union(tp: Any, value: Any, source: str, path: str) -> Any:
    options = [a for a in get_args(tp) if a is not type(None)]
    if value is None:
        if len(options) < len(get_args(tp)):
            return None
        raise _wrong(tp, value, source, path)
    records = [a for a in options if dataclasses.is_dataclass(a)]
    if isinstance(value, dict) and len(records) == 1:
        return _build_dataclass(records[0], value, source, path)
    for option in options:
        try:
            return _convert(option, value, source, path)
        except SqjaxError:
            continue
    raise _wrong(tp, value, source, path)


def _build_dataclass(cls: type, value: Any, source: str, path: str) -> Any:
    if not isinstance(value, dict):
        raise _wrong(cls, value, source, path)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in value:
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {_join(path, near[0])!r}?" if near else ""
            raise SqjaxError(
                f"{source}: unknown key {_join(path, key)!r}{hint} "
                f"(keys allowed here: {', '.join(sorted(fields))})"
            )
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in value:
            raise SqjaxError(
                f"{source}: missing key {_join(path, name)!r} ({type_name(hints[name])})"
            )
    kwargs = {k: _convert(hints[k], v, source, _join(path, k)) for k, v in value.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise SqjaxError(f"{source}: key {path or '<top level>'!r}: {e}") from None
