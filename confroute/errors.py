"""Errors that users see. Each message says what was expected, what was found, and what to do."""

from __future__ import annotations

import importlib
import re
from types import ModuleType


class ConfrouteError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class ConfigError(ConfrouteError):
    """A setting is unknown, of the wrong type or out of range."""


class DataError(ConfrouteError):
    """Input data is missing, malformed or of the wrong schema."""


class ArtifactError(ConfrouteError):
    """A router artifact or run directory is missing, incomplete or corrupt."""


class InputError(ConfrouteError):
    """A prompt handed to the runtime is empty, of the wrong type or otherwise unusable."""


class MissingExtraError(ConfrouteError):
    """An optional dependency is needed for this feature but is not installed."""


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, naming the pip extra that provides it when it is absent."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            f"this feature needs the Python package '{module.split('.')[0]}', which is not "
            f"installed ({exc}). Install it with: pip install 'confroute[{extra}]'"
        ) from exc


# --- jsonargparse's messages in confroute's one-line form (the CLI prints every error so) ------


def one_line(message: str) -> str:
    """jsonargparse's message on one line, `<class 'int'>` shown as `int`."""
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    text = re.sub(r"Parser key \"([\w.]+)\": ", r"\1: ", text)
    # Name an unknown key the way the rest of confroute does, as its full dotted key.
    text = re.sub(r"Group '([\w.]+)' does not accept option '([\w.]+)'",
                  r"unknown setting \1.\2", text)
    text = re.sub(r"Option '([\w.]+)' is not accepted", r"unknown setting \1", text)
    text = re.sub(r"Expected a <class '([\w.]+)'>", r"expected \1", text)
    text = re.sub(r"Expected a typing\.(Literal\[.*?\])", r"expected one of \1", text)
    return _type_error(text)


_WANTS = {"float": "a number", "int": "a whole number", "NoneType": "null", "bool": "true or false",
          "str": "text", "Path": "a path",
          "list": "a list, in brackets (--key '[\"a\", \"b\"]', or key: [a, b] in YAML)"}


def _type_error(text: str) -> str:
    """`key: <jsonargparse's type-check report> Given value: x` -> `key must be a number; found
    'x'` (NaN and infinities are not numbers to the CLI's YAML parser: they fail here too)."""
    found = re.match(r"([\w.]+): .*?(?:Given|Got) value: (.*)$", text)
    if not found or "expected" not in text:
        return text
    literal = re.search(r"expected one of Literal\[(.*?)\]", text)
    wants = ([f"one of {literal.group(1)}"] if literal else
             [_WANTS.get(w, w) for w in dict.fromkeys(re.findall(r"expected (\w+)", text))])
    return f"{found.group(1)} must be {' or '.join(wants)}; found {found.group(2)!r}"
