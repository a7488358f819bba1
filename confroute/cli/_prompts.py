"""Reading prompts for the CLI: arguments, a .txt/.jsonl file, or stdin, in bounded chunks.

Files and stdin are read as bytes and decoded here, line by line, as strict UTF-8 (a leading
byte-order mark is dropped), so a byte that is not UTF-8 is an error naming the file, line and
byte rather than a traceback; arguments (which Python decodes with surrogateescape) are checked
by confroute.text's one policy, like every other entry point.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from confroute.errors import InputError
from confroute.text import Turn, check_text, decode_utf8, prompt_text


def iter_prompts(prompts: list[str], file: str | None) -> Iterator[tuple[str, Any]]:
    """Yield (where, prompt) pairs; `where` names the source line for error messages.

    Text input is one prompt per line (blank lines skipped). JSONL input (`.jsonl` files, or stdin
    whose first non-blank line starts with `{` or `"`) holds a JSON string, or an object with
    `prompt` (string) or `messages` (chat list) per line. Raises InputError (missing or unreadable
    file, not UTF-8, bad JSON).
    """
    if prompts:
        for i, prompt in enumerate(prompts):
            where = f"argument {i + 1}"
            yield where, check_text(prompt, where)
        return
    if file:
        path = Path(file)
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise InputError(f"prompt file {file} {what}")
        try:
            with open(path, "rb") as handle:
                yield from _lines(handle, str(path), path.suffix == ".jsonl")
        except OSError as exc:
            raise InputError(f"cannot read prompt file {file}: {exc.strerror}") from exc
        return
    if sys.stdin.isatty():
        raise InputError("no prompts: pass them as arguments, with --file, or on stdin")
    yield from _lines(sys.stdin.buffer, "stdin", None)


def _lines(handle: Iterable[bytes], name: str, jsonl: bool | None
           ) -> Iterator[tuple[str, Any]]:
    for number, raw in enumerate(handle, 1):
        where = f"{name} line {number}"
        line = decode_utf8(raw, where)
        if number == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        if jsonl is None:
            jsonl = line.lstrip()[:1] in ("{", '"')
        yield where, _parse(line, where) if jsonl else line.rstrip("\r\n")


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


def scored_texts(items: Iterable[tuple[str, Any]], turn: Turn) -> list[str]:
    """The text scored for each (where, prompt); InputError names the input line at fault."""
    texts = []
    for where, prompt in items:
        try:
            texts.append(prompt_text(prompt, turn))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    return texts


def chunks(items: Iterator[tuple[str, Any]], size: int = 256
           ) -> Iterator[list[tuple[str, Any]]]:
    """Group (where, prompt) pairs into lists of at most `size`, so memory stays bounded."""
    chunk: list[tuple[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
