"""Checks of the public API's arguments, made at the head of each public function.

Every loader, constructor and function of the public API (listed on the docs' API index page)
checks its arguments here before it does any work, so a wrong type, NaN, an infinity, a value
out of range, a bool where a number is due, an empty name, a missing path or a file where a
folder is due fails at once with confroute's own error, one line naming the argument, what it
allows and what it got, never as a TypeError, ValueError or numpy error from deep inside.

    batch_size = number(batch_size, "batch_size", low=1, high=65536, integer=True)
    directory = path(directory, "directory", ArtifactError, kind="folder", fix=MAKE_IT)

Plain functions rather than pydantic's `validate_call`: `Router.decide` runs per request, and
these checks cost about a microsecond each where a `validate_call` wrapper costs several (see
the docs' API index page for the figures); numpy scalars pass as numbers, and "0.5" is not one.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from confroute.errors import ConfigError, ConfrouteError

Error = type[ConfrouteError]
SHOWN = 60
"""Longest repr of a value quoted in an error (a huge value is cut, with its type and size)."""


def shown(value: Any) -> str:
    """`repr(value)`, cut to SHOWN characters for a huge value."""
    text = repr(value)
    if len(text) <= SHOWN:
        return text
    return f"{text[:SHOWN - 20]}... (a {type(value).__name__} of {len(text)} characters)"


def fail(error: Error, name: str, wants: str, value: Any) -> ConfrouteError:
    """The error for argument `name`: it `wants` something else than `value`."""
    return error(f"{name} must be {wants}; found {shown(value)}")


def number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, integer: bool = False, optional: bool = False,
           unit: str = "", error: Error = ConfigError) -> Any:
    """`value` as a float (an int with `integer`) in [low, high] (`low_open`: (low, high]);
    finite always. Bools, strings, NaN and infinities fail; numpy scalars pass. `optional`:
    None passes as None; `unit` is named in the error."""
    if value is None and optional:
        return None
    if not _in_range(value, low, high, low_open, integer):
        raise fail(error, name, _number_text(low, high, low_open, integer, optional, unit),
                   value)
    return int(value) if integer else float(value)


def _in_range(value: Any, low: float | None, high: float | None, low_open: bool,
              integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(
            value, numbers.Integral if integer else numbers.Real):
        return False
    try:
        x = operator.index(value) if integer else float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        return False
    return ((integer or math.isfinite(x)) and (high is None or x <= high)
            and (low is None or x > low or (x == low and not low_open)))


def _number_text(low: float | None, high: float | None, low_open: bool, integer: bool,
                 optional: bool, unit: str) -> str:
    what = "a whole number" if integer else "a number" if (low, high) != (None, None) \
        else "a finite number"
    if low is not None and high is not None:
        what += f" in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        what += f" {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        what += f" <= {high:g}"
    return what + (f" ({unit})" if unit else "") + (" or None" if optional else "")


def choice(value: Any, name: str, options: Collection[str], optional: bool = False,
           error: Error = ConfigError) -> Any:
    """`value` if it is one of `options` (strings); `optional`: None passes."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise fail(error, name, f"one of {listed}{' or None' if optional else ''}", value)
    return value


def text(value: Any, name: str, optional: bool = False, error: Error = ConfigError) -> Any:
    """`value` if it is a string with something other than whitespace; `optional`: None
    passes."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(error, name, "a non-empty string", value)
    return value


def names(value: Any, name: str, at_least: int = 1, error: Error = ConfigError) -> list[str]:
    """`value` as a list of at least `at_least` distinct non-empty strings (a lone string is
    refused: it is not a list of names)."""
    wants = f"a list of at least {at_least} distinct non-empty names"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise fail(error, name, wants, value)
    items = list(value)
    if len(items) < at_least or len(set(map(repr, items))) != len(items) or not all(
            isinstance(v, str) and v.strip() for v in items):
        raise fail(error, name, wants, value)
    return items


def mapping(value: Any, name: str, optional: bool = False, error: Error = ConfigError) -> Any:
    """`value` if it is a mapping (a dict); `optional`: None passes."""
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        raise fail(error, name, f"a mapping{' or None' if optional else ''}", value)
    return value


def instance(value: Any, name: str, cls: type | tuple[type, ...], wants: str,
             optional: bool = False, error: Error = ConfigError) -> Any:
    """`value` if it is an instance of `cls` (described as `wants`); `optional`: None passes."""
    if (value is None and optional) or isinstance(value, cls):
        return value
    raise fail(error, name, wants + (" or None" if optional else ""), value)


Kind = Literal["folder", "file", "out", "any"]


def path(value: Any, name: str, error: Error, kind: Kind = "any", fix: str = "") -> Path:
    """`value` (a str or os.PathLike, not bytes, not empty) as a Path. `kind` "folder" or
    "file": it must exist as one, else the error ends with `fix` (what to do); "out": a folder
    to write into, which need not exist yet but is no file; "any": it need not exist."""
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise fail(error, name, "a path (a str or pathlib.Path)", value)
    raw = os.fspath(value)
    if not isinstance(raw, str) or not raw.strip() or "\0" in raw:
        raise fail(error, name, "a non-empty path (a str or pathlib.Path)", value)
    where = Path(raw)
    if kind == "folder" and not where.is_dir():
        state = "is a file, not a folder" if where.exists() else "does not exist"
        raise error(f"{name} {where} {state}{'; ' + fix if fix else ''}")
    if kind == "out" and where.exists() and not where.is_dir():
        raise error(f"{name} {where} is a file, not a folder to write into"
                    f"{'; ' + fix if fix else ''}")
    if kind == "file" and not where.is_file():
        state = "is a folder, not a file" if where.is_dir() else "does not exist"
        raise error(f"{name} {where} {state}{'; ' + fix if fix else ''}")
    return where


def array(value: Any, name: str, ndim: int, *, low: float | None = None,
          high: float | None = None, error: Error = ConfigError) -> np.ndarray:
    """`value` as a float64 array of `ndim` dimensions, finite, within [low, high]. Arrays of
    bools, strings or objects (None, mixed types) fail, as do NaN and infinities."""
    raw = np.asarray(value) if not isinstance(value, str | bytes | Mapping) else None
    bounds = ("" if low is None and high is None else
              f" in [{'-inf' if low is None else f'{low:g}'}, "
              f"{'inf' if high is None else f'{high:g}'}]")
    wants = f"a {ndim}-d array of finite numbers{bounds}"
    if raw is None or raw.dtype.kind not in "iuf":
        raise fail(error, name, wants, value)
    out = raw.astype(float, copy=False)
    if out.ndim != ndim:
        raise error(f"{name} must be {wants}; found shape {out.shape}")
    bad = ~np.isfinite(out)
    if low is not None:
        bad |= out < low
    if high is not None:
        bad |= out > high
    if bad.any():
        at = tuple(int(i[0]) for i in np.nonzero(bad))
        where = at if ndim > 1 else at[0]
        raise error(f"{name} must be {wants}; found {float(out[at])!r} at {where}")
    return out
