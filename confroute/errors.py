"""Errors that users see. Each message says what was expected, what was found, and what to do."""

from __future__ import annotations

import importlib
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
