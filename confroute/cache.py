"""confroute's user cache folder: $CONFROUTE_CACHE, else $XDG_CACHE_HOME/confroute, else
~/.cache/confroute. Only training and labelling write there (a distilled static table, dequantised
GGUF models, LLM entailment verdicts); routing, serving and export never do."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CONFROUTE_CACHE"


def user_cache_dir() -> Path:
    """The folder (not created here); an empty variable counts as unset."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "confroute"
