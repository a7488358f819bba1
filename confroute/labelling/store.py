"""Append-only JSONL store of finished work, safe against Ctrl-C and kill -9.

Each finished prompt is one JSON line, written with a single `write` and flushed + fsynced
before the next batch starts, so what is on disk is everything that finished. A kill during a
write can leave a torn last line (no trailing newline); `open` drops it (that prompt is simply
redone) and never appends after it. Records are keyed; a key that is already on disk is
skipped on resume, and duplicate keys on disk (a copied file) are counted and the first is kept.

One process writes a store at a time: a writer holds an exclusive `flock` on the file while it
is open, so a second `confroute label` on the same --out stops with an error instead of sampling
every prompt again. The kernel drops the lock when the process ends, kill -9 included, so no
stale lock is left behind. Stores opened again in the same process share the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from confroute.errors import DataError


class JsonlStore:
    """Records `{"key": ..., ...}` in an append-only file; `keys` says what is done."""

    def __init__(self, path: str | Path, meta: dict[str, Any] | None = None,
                 readonly: bool = False) -> None:
        """Open (and with `meta`, create or check) a store.

        `readonly` reads a store another process may be writing: the file is never changed,
        and an unfinished last line is ignored instead of cut.
        """
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise DataError(f"sample store {self.path} does not exist")
            self.torn_lines = 0
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = _lock(self.path)
            self.torn_lines = _repair_tail(self.path)
        self.records: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.meta = self._check_meta(meta)
        for record in _read(self.path):
            if record.get("key") == "__meta__":
                continue
            if record["key"] in self.records:
                self.duplicates += 1
                continue
            self.records[record["key"]] = record

    def _check_meta(self, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        """The first line records the settings; resuming with other settings is refused."""
        first = next(iter(_read(self.path)), None)
        if first is not None and first.get("key") == "__meta__":
            if meta is not None and first["meta"] != meta:
                changed = sorted(k for k in set(first["meta"]) | set(meta)
                                 if first["meta"].get(k) != meta.get(k))
                raise DataError(f"{self.path} was written with other settings ({', '.join(changed)}"
                                f"): on disk {({k: first['meta'].get(k) for k in changed})}, now "
                                f"{({k: meta.get(k) for k in changed})}. Resume with the same "
                                "settings or write to a new file")
            return first["meta"]
        if meta is not None:
            if first is not None:
                raise DataError(f"{self.path} holds records but no settings line; write to a "
                                "new file")
            self._append([{"key": "__meta__", "meta": meta}])
        return meta

    @property
    def keys(self) -> set[str]:
        return set(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records (each with a string `key`) durably; keys already stored are skipped."""
        fresh = []
        for record in records:
            key = record.get("key")
            if not isinstance(key, str) or key == "__meta__":
                raise DataError("store record needs a string 'key' (not '__meta__'); "
                                f"found {key!r}")
            if key not in self.records:
                fresh.append(record)
                self.records[key] = record
        self._append(fresh)

    def _append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self.readonly:
            raise DataError(f"{self.path} was opened read-only")
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def first_meta(path: str | Path) -> dict[str, Any] | None:
    """The settings a store file was written with (its first line), or None: no file, or none.

    Reads one line and changes nothing, so it may look at a store another process writes."""
    first = next(iter(_read(Path(path))), None)
    return first["meta"] if first is not None and first.get("key") == "__meta__" else None


_LOCKS: dict[Path, int] = {}
"""Store files this process holds the writer lock of -> the locked file descriptor."""


def _lock(path: Path) -> int:
    """Take (or share, within this process) the exclusive writer lock of `path`."""
    key = path.resolve()
    if key not in _LOCKS:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(f"{path} is being written by another process (another `confroute "
                            "label` on the same --out?); wait for it to finish, or write to "
                            "another --out") from None
        _LOCKS[key] = fd
    return _LOCKS[key]


def _repair_tail(path: Path) -> int:
    """Cut a torn last line (a write killed midway) so new lines start cleanly; return 0 or 1."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return 0
        # scan back to the last newline; everything after it is the torn record
        block, end = 1 << 16, size
        while end > 0:
            start = max(0, end - block)
            handle.seek(start)
            chunk = handle.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                handle.truncate(start + cut + 1)
                return 1
            end = start
        handle.truncate(0)
        return 1


def _read(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                return  # a record still being written (read-only readers); not finished yet
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {number} is not valid JSON ({exc}); only a torn "
                                "last line is repaired automatically. Fix or remove that line"
                                ) from exc
            if not isinstance(record, dict) or "key" not in record:
                raise DataError(f"{path} line {number} is not a store record (no 'key')")
            yield record
