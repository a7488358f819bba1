"""Loading, overriding and writing settings dataclasses: YAML, dicts and the command line.

jsonargparse reads the dataclasses (`settings_parser`), so the CLI, YAML files and `from_dict`
share one type check that rejects unknown keys and wrong types, naming the key; every function
raises ConfigError in one line. `confroute.config` re-exports these names, where the stages'
settings dataclasses are declared.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from confroute.errors import ConfigError, one_line

T = TypeVar("T")


def settings_parser(cls: type, **kwargs: Any) -> Any:
    """A jsonargparse parser whose keys are `cls`'s fields (nested dataclasses as dotted keys).

    `kwargs` go to `ArgumentParser` (e.g. prog, description). Errors are raised, not printed
    with an exit, so callers turn them into one-line ConfigErrors (see `parse_errors`).
    """
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False, **kwargs)
    parser.add_class_arguments(cls, sub_configs=True)
    return parser


def build(cls: type[T], namespace: Any) -> T:
    """`cls` from an instantiated jsonargparse namespace holding its fields at the top level
    (fields the parser skipped keep their defaults)."""
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: namespace[name] for name in fields if name in namespace})


@contextlib.contextmanager
def parse_errors(where: str = "") -> Iterator[None]:
    """Turn jsonargparse's (multi-line) ArgumentError into a one-line ConfigError."""
    from jsonargparse import ArgumentError

    try:
        yield
    except ArgumentError as exc:
        raise ConfigError(f"{where}{one_line(str(exc))}") from exc


def from_dict(cls: type[T], values: dict[str, Any] | None) -> T:
    """Build dataclass `cls` from a (nested) dict, e.g. parsed YAML.

    Raises ConfigError naming the key for unknown keys, values of the wrong type, and values the
    dataclass's own checks (`__post_init__`) reject.
    """
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigError(f"settings must be a mapping; found {type(values).__name__}")
    parser = settings_parser(cls)
    with parse_errors():
        return build(cls, parser.instantiate(parser.parse_object(values)))


def to_dict(obj: Any) -> dict[str, Any]:
    """The dataclass `obj` as nested plain dicts (what `dump_yaml` writes)."""
    return dataclasses.asdict(obj)


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Build `cls` from a YAML file; ConfigError if it is missing, not YAML, or not valid."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass a YAML file made by "
                          "`confroute train` (RUN_DIR/config.yaml) or `confroute tune`")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {one_line(str(exc))}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must be a mapping of settings")
    try:
        return from_dict(cls, values)
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc


def dump_yaml(obj: Any, path: str | Path) -> None:
    """Write the dataclass `obj` as YAML, atomically (a crash never leaves half a file)."""
    from confroute.files import write_text

    write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))


def override(obj: T, dotted: dict[str, Any]) -> T:
    """A copy of dataclass `obj` with `{"train.max_steps": 10, ...}` applied and checked.

    Raises ConfigError for an unknown key or a value its field's type or checks reject.
    """
    parser = settings_parser(type(obj))
    with parse_errors():
        namespace = parser.parse_object(to_dict(obj))
        for key, value in dotted.items():
            if key not in namespace:
                raise ConfigError(f"unknown setting {key}")
            namespace[key] = value
        return build(type(obj), parser.instantiate(parser.parse_object(namespace.as_dict())))
