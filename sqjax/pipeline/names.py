"""Names that become file names, and confinement of deletes and moves to a run directory.

Model names, benchmark names and stage refs end up as directory names (RUN/<stage>/train/<model>,
RUN/<stage>/artifacts/<model>). A name from a config is therefore a plain identifier: letters,
digits, `.`, `_`, `-`, starting with a letter or digit, at most 128 characters; no `/`, no
`..`, nothing absolute. `check_name` runs when the config is loaded, before any stage;
`confined` runs right before anything is deleted or moved, as a second line of defence for
configs built in code.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from sqjax.errors import SqjaxError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(name: Any, key: str, source: str) -> None:
    """SqjaxError (one line, naming the key) unless `name` is a plain identifier."""
    if isinstance(name, str) and NAME_RE.fullmatch(name) and ".." not in name:
        return
    suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).replace("..", ".").strip(".-_")
    raise SqjaxError(
        f"{source}: key {key!r}: name {name!r} becomes a directory name; use letters, digits, "
        f"'.', '_' or '-' (starting with a letter or digit), e.g. {suggestion or 'model'!r}"
    )


def _normal(path: Any) -> str:
    text = os.fspath(path)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        return f"{scheme}://{posixpath.normpath('/' + rest).lstrip('/')}"
    return os.path.realpath(text)


def confined(path: Any, root: Any) -> Any:
    """`path` itself, after checking that it lies strictly inside `root` once `..` and links
    are resolved (gs:// paths: `..` only); SqjaxError otherwise."""
    target, base = _normal(path), _normal(root).rstrip("/")
    if not target.startswith(base + "/"):
        raise SqjaxError(
            f"refusing to delete or replace {os.fspath(path)}: it resolves to {target}, "
            f"outside {base}; use a plain model name (letters, digits, '.', '_', '-')"
        )
    return path
