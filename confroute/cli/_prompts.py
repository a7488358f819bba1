"""Reading prompts for the CLI: arguments, a .txt/.jsonl file, or stdin, in bounded chunks."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from confroute.errors import InputError


def iter_prompts(prompts: list[str], file: str | None) -> Iterator[tuple[str, Any]]:
    """Yield (where, prompt) pairs; `where` names the source line for error messages.

    Text input is one prompt per line (blank lines skipped). JSONL input (`.jsonl` files, or stdin
    whose first non-blank line starts with `{` or `"`) holds a JSON string, or an object with
    `prompt` (string) or `messages` (chat list) per line.
    """
    if prompts:
        yield from ((f"argument {i + 1}", p) for i, p in enumerate(prompts))
        return
    if file:
        path = Path(file)
        if not path.is_file():
            raise InputError(f"prompt file {file} does not exist")
        with open(path, encoding="utf-8") as handle:
            yield from _lines(handle, str(path), path.suffix == ".jsonl")
        return
    if sys.stdin.isatty():
        raise InputError("no prompts: pass them as arguments, with --file, or on stdin")
    yield from _lines(sys.stdin, "stdin", None)


def _lines(handle: TextIO, name: str, jsonl: bool | None) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        if jsonl is None:
            jsonl = line.lstrip()[:1] in ("{", '"')
        where = f"{name} line {number}"
        yield where, _parse(line, where) if jsonl else line.rstrip("\n")


def _parse(line: str, where: str) -> Any:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON: {exc.msg}") from exc
    if isinstance(value, dict):
        for key in ("prompt", "messages"):
            if key in value:
                return value[key]
        raise InputError(f"{where}: a JSON object needs a 'prompt' or 'messages' key; "
                         f"found {', '.join(value) or 'none'}")
    return value


def chunks(items: Iterator[tuple[str, Any]], size: int = 256
           ) -> Iterator[list[tuple[str, Any]]]:
    chunk: list[tuple[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
