"""Validating serve settings with pydantic: the value types (`Unit`, `Seconds`, `Count`, `Port`),
the upstream URL check, and pydantic's ValidationError as one ConfigError naming the dotted key.

Our own refusals are PydanticCustomErrors of type "setting" whose message reads on from the key
("must be a finite number in [0.0, 1.0]; found 1.5"), so `config_error` writes them as
"thresholds.small must be ..."; pydantic's own errors are written as "key: message; found x".
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError

from confroute.errors import ConfigError
from confroute.llm_client import redact

T = TypeVar("T")


def config_error(exc: ValidationError, names: Sequence[str] = ()) -> ConfigError:
    """The first error of `exc` as one line: its dotted key (upstreams.small.base_url) and what
    is wrong. Ours (type "setting") read on from the key ("... must be ..."); pydantic's own
    name the key, then the message and the value found (key-shaped text shown as ***).
    `names`: the fields in order, naming a positional argument's error by its field."""
    errors = exc.errors(include_url=False)
    error = errors[0]
    loc = list(error["loc"])
    if loc and isinstance(loc[0], int) and loc[0] < len(names):  # a positional argument
        loc[0] = names[loc[0]]
    key = ".".join(str(part) for part in loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if error["type"] == "setting":
        return ConfigError(f"{key} {error['msg']}".strip() + more)
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return ConfigError(f"unknown setting {key}; `confroute serve --help` lists the "
                           f"settings{more}")
    found = "" if "token" in key else f"; found {redact(repr(error['input']))}"
    message = error["msg"][:1].lower() + error["msg"][1:]
    if error["type"] == "list_type":  # e.g. cors_origins: "*" where ["*"] was meant
        found += (f"; write a list: `{key.rsplit('.', 1)[-1]}: [{redact(repr(error['input']))}]` "
                  "in the YAML file, or the flag's value in brackets")
    return ConfigError(f"{key}: {message}{found}{more}")


def config_errors(cls: type[T]) -> type[T]:
    """Make building `cls` raise `config_error(...)` (a ConfigError) for a ValidationError."""
    init = cls.__init__
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            raise config_error(exc, names) from None

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def refuse(message: str, found: str | None = None) -> PydanticCustomError:
    """Our refusal: `message` reads on from the key; "{found}" in it becomes `found` (given)."""
    return PydanticCustomError("setting", message, None if found is None else {"found": found})


def _number(low: float, high: float, low_open: bool = False) -> BeforeValidator:
    """A finite real number in [low, high] (or (low, high]); NaN, infinities, strings and
    bools are refused. Written as `low <= value <= high`, so NaN fails too."""
    bound = f"{'(' if low_open else '['}{low}, {high}{')' if math.isinf(high) else ']'}"

    def number(value: Any) -> float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            x = float(value)
            if math.isfinite(x) and (low < x if low_open else low <= x) and x <= high:
                return x
        raise refuse(f"must be a finite number in {bound}; found {{found}}", repr(value))

    return BeforeValidator(number)


def _integer(low: int, high: int | None = None, note: str = "") -> BeforeValidator:
    """An int (not a bool) >= low (and <= high)."""
    span = f">= {low}" if high is None else f"in [{low}, {high}]{note}"

    def integer(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if low <= value and (high is None or value <= high):
                return value
            raise refuse(f"must be {span}; found {{found}}", repr(value))
        raise refuse(f"must be an integer {span}; found {{found}}", repr(value))

    return BeforeValidator(integer)


Unit = Annotated[float, _number(0.0, 1.0)]
"""A threshold: a finite number in [0, 1]."""
Seconds = Annotated[float, _number(0.0, math.inf, low_open=True)]
"""A time limit: a finite number of seconds > 0."""
Count = Annotated[int, _integer(1)]
"""A size or a number of things: an int >= 1."""
Port = Annotated[int, _integer(0, 65535, " (0 = any free port)")]
"""A TCP port, 0 = any free one."""


def url_problem(url: Any) -> str | None:
    """Why `url` is not an http(s) URL with a host (and a port, if any, that is one); None if
    it is one. The URL is shown with any user:password part and key-shaped text as ***."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        ok = (parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
              and not any(c.isspace() for c in url) and (parts.port is None or parts.port > 0))
    except ValueError:  # a port that is not a number, a bad IPv6 literal
        ok = False
    return None if ok else ("must be an http(s) URL such as http://127.0.0.1:8080/v1; found "
                            + shown_url(url))


def check_base_url(url: Any, key: str = "upstream base_url") -> None:
    """ConfigError naming `key` unless `url` is an http(s) URL (see `url_problem`)."""
    problem = url_problem(url)
    if problem:
        raise ConfigError(f"{key} {problem}")


def shown_url(url: Any) -> str:
    """`url` fit for an error message: user:password@ and key-shaped text as ***."""
    if not isinstance(url, str):
        return repr(url)
    return repr(redact(re.sub(r"(//)[^/@]*@", r"\1***@", url)))


def no_space(value: str | None, field: str) -> str | None:
    """`value` (a host or the bearer token; None passes) unless it is empty or holds white
    space: an empty host binds every interface, and a token with spaces or a line break can
    never match the `Authorization: Bearer <token>` clients send. PydanticCustomError (via
    `refuse`) otherwise; the token's value is never shown."""
    if value is None or (value and not any(c.isspace() for c in value)):
        return value
    if field == "token":
        raise refuse("($CONFROUTE_TOKEN) is empty or holds spaces or line breaks, so no client "
                     "could send it; set it to the token alone")
    raise refuse("must be an address or a name (e.g. 127.0.0.1, or 0.0.0.0 for every "
                 "interface); found {found}", repr(value))
