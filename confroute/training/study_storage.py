"""Where `confroute tune` keeps its optuna study: an RDB storage URL (a SQLite file by default;
PostgreSQL or MySQL for several machines), opened with heartbeats so that trials of a killed
worker are marked failed, and shown in messages without its password."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from confroute.errors import ConfigError, require


def open_storage(url: str) -> Any:
    """An optuna RDB storage for `url`, connected now so an unreachable one fails before trials.

    Raises ConfigError naming the URL (password hidden) when its folder is missing, it is not a
    URL, or the database cannot be reached or its driver is missing."""
    optuna = require("optuna", "train")
    shown = masked(url)
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise ConfigError(f"storage {shown}: folder {folder} does not exist; create it or use "
                              "another path")
    elif "://" not in url:
        raise ConfigError(f"storage {shown!r} is not a storage URL; expected e.g. "
                          "sqlite:///path/study.db or postgresql://user@host/db")
    engine: dict[str, Any] = {}
    if not url.startswith("sqlite"):
        engine["connect_args"] = {"connect_timeout": 10}  # psycopg2 and pymysql both take it
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in optuna 4-5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Heartbeats let a later worker mark trials of a killed worker as failed.
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=60,
                                              grace_period=180)
    except Exception as exc:  # sqlalchemy raises driver-specific types; the message matters
        reason = str(exc).splitlines()[0].rstrip(".") if str(exc) else ""
        raise ConfigError(f"cannot open optuna storage {shown}: {type(exc).__name__}: "
                          f"{reason}. Give an optuna "
                          "storage URL this machine can reach (sqlite:///path/study.db, "
                          "postgresql://user:pass@host/db, mysql://...) with its driver "
                          "installed") from exc


def masked(url: str) -> str:
    """`url` with its password hidden, for messages; unchanged when it is not a database URL."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy understands: nothing to hide
        return url
