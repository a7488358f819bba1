"""Atomic replacement of a user's file: the one helper every writer that overwrites uses.

A write goes to a temporary file in the same directory, is flushed to disk, and is then renamed
over the target (`os.replace`, atomic on POSIX within one filesystem). A full disk, an error in
the writer or a kill therefore leaves either the old file or the new one, never a half-written
file; the temporary file is removed when the writer fails. (The recipe is the usual one, e.g.
the `atomicwrites` package and Python's `tempfile` docs; written out here because it is short.)

    with replacing("out/metrics.json") as tmp:   # tmp keeps the suffix: .json
        tmp.write_text(text)
    write_text("out/router.json", text)          # the same for a string
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    The temporary name keeps the target's suffix, so writers that choose a format by suffix
    (pandas, numpy, matplotlib) write the same format. Parent directories are created.

    Raises:
        whatever the writer raised (OSError for a full disk, ...): the old file is intact and
        the temporary file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text(path: str | Path, text: str) -> Path:
    """Replace `path` with `text` (UTF-8) atomically; returns the path."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any, indent: int = 2, **dump_args: Any) -> Path:
    """Replace `path` with `data` as JSON (trailing newline) atomically; returns the path."""
    return write_text(path, json.dumps(data, indent=indent, **dump_args) + "\n")


def _fsync(path: Path) -> None:
    # A rename is only durable after the data it points to is: flush the file first.
    if path.is_file():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_settings_file(path: Path, what: str, error: type[Exception]) -> Any:
    """The parsed content of a small YAML or JSON file (JSON by the `.json` suffix, else YAML).

    Raises `error` naming the file as `what` when it is not UTF-8 text or does not parse; the
    caller checks existence and shape.
    """
    import yaml

    as_json = path.suffix.lower() == ".json"
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if as_json else yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save "
                    "it as UTF-8") from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise error(f"{what} {path} is not valid {'JSON' if as_json else 'YAML'}: "
                    f"{' '.join(str(exc).split())}") from exc
