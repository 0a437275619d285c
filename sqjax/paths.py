"""Every file sqjax reads or writes, on a local disk or in Google Cloud Storage (`gs://`).

A path is a `pathlib.Path` when local and an `etils.epath.Path` (the path type Orbax uses,
backed by gcsfs) for `gs://bucket/key`. Both speak the pathlib API; what differs (atomic
writes, listing, moving a directory, copying) goes through the functions here, so no caller
tests strings. Any other scheme (`s3://`, `hdfs://`, the `gs:/x` a shell or pathlib makes of
`gs://x`) is an error: a URL is never silently turned into a local directory.

Atomic commits. A local write goes to a temporary sibling, is fsynced and renamed over the
target. GCS has no rename, but an object upload is atomic: the object appears with all of its
bytes when the upload completes and not at all when the writer dies first (an unfinished
upload leaves nothing). So a write to GCS is one upload of the complete bytes, never a streamed
`open("wb")`, whose close would publish whatever was written before an exception. A commit
spanning several objects orders them so that the last one written is the commit marker: a
shard's stats object, then the shard object (see sqjax.pipeline.shards); an exported HF
directory's weights, then its config.json. GCS is strongly consistent (read-after-write and
listing), so a reader that sees the marker sees what came before it. A manifest is one object
overwritten whole: readers see the old or the new one. A killed run leaves at most objects
that no marker names; the rerun rewrites them with the same bytes.

gcsfs caches directory listings per process, which would hide the shards other processes
write; sqjax turns that cache off, and makes epath use gcsfs even where TensorFlow is
installed (EPATH_USE_TF=false unless set). `STORAGE_EMULATOR_HOST` (read by gcsfs) points the client
at a GCS emulator; sqjax points tensorstore (Orbax's array writer) at the same endpoint
through `TENSORSTORE_GCS_HTTP_URL` unless that is set.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeAlias

from etils import epath

from sqjax.errors import SqjaxError

AnyPath: TypeAlias = Path | epath.Path
PathLike: TypeAlias = str | os.PathLike
SCHEMES = ("gs",)
LINE_BUFFER_BYTES = 8 << 20  # reads of line-oriented files in a bucket
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/")


def _configure_gcs() -> None:
    """gcsfs behind every epath (also Orbax's) even where TensorFlow is installed, whose
    gfile backend epath would pick otherwise; no listing cache (other processes write into
    the same directories); tensorstore at the emulator when gcsfs is."""
    import fsspec.config

    os.environ.setdefault("EPATH_USE_TF", "false")

    fsspec.config.conf.setdefault("gcs", {})["use_listings_cache"] = False
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if emulator and "TENSORSTORE_GCS_HTTP_URL" not in os.environ:
        url = emulator if emulator.startswith(("http://", "https://")) else f"http://{emulator}"
        os.environ["TENSORSTORE_GCS_HTTP_URL"] = url


_configure_gcs()


def scheme(path: PathLike) -> str | None:
    """The URL scheme of `path` (`gs`), or None for a local path; SqjaxError for any other."""
    text = os.fspath(path)
    m = _URL.match(text)
    if m is None:
        return None
    name = m.group(1).lower()
    if name == "file":
        return None
    if name not in SCHEMES or not text.startswith(f"{m.group(1)}://") or len(text) <= len(name) + 3:
        raise SqjaxError(
            f"{text!r}: unsupported location; use a local path or gs://BUCKET/PATH "
            f"(supported schemes: {', '.join(s + '://' for s in SCHEMES)})"
        )
    return name


def is_remote(path: PathLike) -> bool:
    return scheme(path) is not None


def as_path(path: PathLike) -> AnyPath:
    """`gs://...` as an epath.Path, anything else as a local pathlib.Path (`~` expanded);
    SqjaxError for an unsupported scheme."""
    if isinstance(path, epath.Path) and not isinstance(path, Path):
        return path if is_remote(path) else Path(os.fspath(path))
    kind = scheme(path)
    text = os.fspath(path)
    if kind is None:
        return Path(text.removeprefix("file://")).expanduser()
    return epath.Path(text)


def _fs(path: AnyPath) -> Any:
    """The gcsfs filesystem of a gs:// path."""
    from etils.epath import backend

    return backend.fsspec_backend.fs(os.fspath(path))


# --- writing --------------------------------------------------------------------------------
def write_bytes(path: PathLike, data: bytes) -> None:
    """Writes `data` so that readers see either the old file or the complete new one."""
    path = as_path(path)
    if is_remote(path):
        _fs(path).pipe_file(os.fspath(path), bytes(data))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def upload_file(local: PathLike, path: PathLike) -> None:
    """Copies a local file to `path` (atomically, as write_bytes), streaming large files."""
    path = as_path(path)
    if not is_remote(path):
        write_bytes(path, Path(local).read_bytes())
        return
    _fs(path).put_file(os.fspath(local), os.fspath(path))


def makedirs(path: PathLike) -> AnyPath:
    """Creates a local directory and its parents; GCS has no directories (a no-op)."""
    path = as_path(path)
    if not is_remote(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


# --- reading --------------------------------------------------------------------------------
def list_names(directory: PathLike) -> list[str]:
    """Sorted names of the files and subdirectories in `directory` ([] when it is absent),
    as every process sees them now."""
    directory = as_path(directory)
    if is_remote(directory):
        try:
            found = _fs(directory).ls(os.fspath(directory), detail=False)
        except FileNotFoundError:
            return []
        own = os.fspath(directory).removeprefix("gs://").rstrip("/")
        return sorted({n.rstrip("/").rsplit("/", 1)[-1] for n in found if n.rstrip("/") != own})
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir())


def has_entries(directory: PathLike) -> bool:
    return bool(list_names(directory))


def open_binary(path: PathLike, buffer_bytes: int = 0) -> IO[bytes]:
    """A seekable binary reader; on GCS it reads byte ranges as they are asked for. Give
    `buffer_bytes` to read lines: each read of a gcsfs file is a round trip through its event
    loop, so a line-by-line read of an unbuffered one costs about a millisecond per line."""
    path = as_path(path)
    f = path.open("rb")
    if buffer_bytes and is_remote(path):
        return io.BufferedReader(f, buffer_size=buffer_bytes)
    return f


# --- whole directories ----------------------------------------------------------------------
def remove_tree(path: PathLike) -> None:
    """Deletes a directory (or object prefix) and everything in it; absent is fine."""
    path = as_path(path)
    if is_remote(path):
        if path.exists():
            _fs(path).rm(os.fspath(path), recursive=True)
        return
    shutil.rmtree(path, ignore_errors=True)


def move_tree(src: PathLike, dst: PathLike) -> None:
    """Moves a directory to `dst` (which must not exist). Local: one rename. GCS: a copy of
    every object then a delete of the source, so an interrupted move leaves the source whole."""
    src, dst = as_path(src), as_path(dst)
    if not is_remote(src) and not is_remote(dst):
        os.rename(src, dst)
        return
    copy_tree(src, dst)
    remove_tree(src)


def copy_tree(src: PathLike, dst: PathLike, skip: tuple[str, ...] = ()) -> AnyPath:
    """Copies every file under `src` to `dst` (any mix of local and gs://), except names
    ending in one of `skip`; config.json goes last (an HF directory's commit marker)."""
    src, dst = as_path(src), as_path(dst)
    for rel in _commit_order(_files_under(src)):
        if not rel.endswith(skip):
            _copy_file(src / rel, dst / rel)
    return dst


def _copy_file(source: AnyPath, target: AnyPath) -> None:
    if not is_remote(source):
        upload_file(source, target)
    else:
        with source.open("rb") as f:
            write_bytes(target, f.read())


def _commit_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: (n.rsplit("/", 1)[-1] == "config.json", n))


def _files_under(root: AnyPath) -> list[str]:
    if is_remote(root):
        fs, base = _fs(root), os.fspath(root).removeprefix("gs://").rstrip("/")
        return sorted(p.removeprefix(base + "/") for p in fs.find(base))
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


@contextlib.contextmanager
def local_dir(path: PathLike, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    """A local directory with the files of `path` (itself when local; a temporary copy of a
    gs:// directory, minus names ending in `skip`, removed on exit)."""
    path = as_path(path)
    if not is_remote(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="sqjax-gcs-") as tmp:
        copy_tree(path, tmp, skip)
        yield Path(tmp)


@contextlib.contextmanager
def staged_dir(path: PathLike, stale: tuple[str, ...] = ()) -> Iterator[Path]:
    """A local directory to write into. Local `path`s are yielded as they are. For gs://, on
    an exit without error the files are uploaded (config.json last: the commit marker of an
    HF directory), and files already under `path` whose names start with one of `stale` but
    were not written this time are deleted before that marker goes up."""
    path = as_path(path)
    if not is_remote(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="sqjax-gcs-") as tmp:
        yield Path(tmp)
        names = _commit_order(_files_under(Path(tmp)))
        if not names:
            return
        for rel in names[:-1]:
            upload_file(Path(tmp) / rel, path / rel)
        for rel in _files_under(path) if stale else []:
            if rel.startswith(stale) and rel not in names:
                _fs(path).rm_file(os.fspath(path / rel))
        upload_file(Path(tmp) / names[-1], path / names[-1])


class LocalMirror:
    """A local directory standing in for `path`: `path` itself when local; for gs:// a
    temporary directory whose files `sync()` uploads whole (objects cannot be appended to),
    for files such as a metrics log or TensorBoard events that are written a line at a time."""

    def __init__(self, path: PathLike) -> None:
        self.path = as_path(path)
        self.remote = is_remote(self.path)
        self.local = Path(tempfile.mkdtemp(prefix="sqjax-mirror-")) if self.remote else self.path
        self.local.mkdir(parents=True, exist_ok=True)

    def sync(self) -> None:
        if self.remote:
            copy_tree(self.local, self.path)

    def close(self) -> None:
        self.sync()
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)


# --- logs -----------------------------------------------------------------------------------
class ObjectLogHandler(logging.Handler):
    """A log file in a bucket: GCS objects cannot be appended to, so the handler keeps the
    text (after what the object already held) and rewrites the object whole at most every
    `every_s` seconds and on close."""

    def __init__(self, path: AnyPath, every_s: float = 10.0) -> None:
        super().__init__()
        self.path, self.every_s = path, every_s
        self._text = path.read_text(encoding="utf-8") if path.exists() else ""
        self._last = 0.0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)
            return
        with self._guard:
            self._text += line
            due = time.monotonic() - self._last >= self.every_s
        if due:
            self.flush()

    def flush(self) -> None:
        with self._guard:
            text, self._last = self._text, time.monotonic()
        try:
            write_text(self.path, text)
        except Exception:  # a lost log line must not stop a stage
            logging.getLogger("sqjax").debug("could not write %s", self.path, exc_info=True)

    def close(self) -> None:
        self.flush()
        super().close()


def log_handler(path: PathLike) -> logging.Handler:
    """A handler appending to the log file `path` (a FileHandler when local)."""
    path = as_path(path)
    if is_remote(path):
        return ObjectLogHandler(path)
    return logging.FileHandler(path, encoding="utf-8")
