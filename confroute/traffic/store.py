"""Where the decision log lives: a SQLAlchemy engine for a URL, with the schema migrated on open.

A SQLite file is the default (embedded, nothing to set up); any SQLAlchemy URL works, e.g.
PostgreSQL through psycopg 3 (`postgresql+psycopg://user@host/db`, or `postgresql://...`,
which SQLAlchemy 2.1 maps to psycopg) for a fleet of proxies sharing one log, as MLflow's and
optuna's storage URLs do. SQLite runs in WAL mode (readers never wait for the writer) with
`synchronous=FULL`, so a committed batch is on disk before it is acknowledged; PostgreSQL
acknowledges a commit once its WAL is flushed (its default `synchronous_commit=on`).

`migrate` applies the Alembic migrations shipped in `migrations/` (an empty database gets the
whole schema, an older one is upgraded) and refuses a database whose revision this version does
not know (written by a newer confroute), naming both revisions. Only the writer (the service)
migrates: the readers (`confroute logs export`, `drift`, `gate`, `train --data.source URL`)
open the log with `connect_reader`, which never writes into it (a SQLite file is opened
read-only) and refuses a source that is not an existing decision log.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confroute.errors import ConfigError, DataError, MissingExtraError, require
from confroute.traffic.schema import VERSION_TABLE

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")
_LOCK_KEY = 0x636F6E66  # PostgreSQL advisory lock: one proxy of a fleet migrates at a time


def is_database_url(source: str) -> bool:
    """Whether `source` is a SQLAlchemy database URL (`sqlite:///log.db`, `postgresql://...`)."""
    scheme = source.split("://", 1)[0] if "://" in source else ""
    return scheme.split("+", 1)[0].lower() in DIALECTS


def shown(url: str) -> str:
    """`url` fit for messages and reports: its password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy understands: nothing to hide
        return url


def connect(url: str, timeout_s: float = 5.0) -> Any:
    """A SQLAlchemy Engine for `url` (nothing is connected yet), for the writer (readers use
    `connect_reader`).

    `timeout_s` bounds a connection attempt (PostgreSQL, MySQL) and a wait for SQLite's write
    lock. Raises ConfigError for a URL that does not parse, an in-memory SQLite database (lost
    on exit), a SQLite file in a folder that does not exist; MissingExtraError when the
    database's driver is not installed.
    """
    sa = require("sqlalchemy", "log")
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # a port that is not a number: ValueError
        raise ConfigError(f"decision log URL {shown(url)!r} is not a database URL; expected e.g. "
                          "sqlite:///decisions.db or postgresql://user@host/db") from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(sa, url, parsed.database, timeout_s)
    connect_args = {"connect_timeout": max(1, math.ceil(timeout_s))}
    try:
        # pre_ping: a pooled connection that died with a restarted server is replaced, not used
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        backend = parsed.get_backend_name()
        fix = ("pip install 'confroute[postgresql]'" if backend == "postgresql" else
               f"install the SQLAlchemy driver for {backend} (SQLAlchemy's dialect docs name "
               "it), or use sqlite:///PATH or postgresql://")
        raise MissingExtraError(f"the decision log URL {shown(url)} needs a database driver that "
                                f"is not installed ({exc}); {fix}") from exc


SQLITE_HEADER = b"SQLite format 3\x00"
TABLES = ("decisions", "outcomes")
EXPECTED = "expected the decision log `confroute serve` writes (the URL of its log.url)"


def connect_reader(url: str, timeout_s: float = 5.0) -> Any:
    """An Engine that reads the existing decision log at `url` and never writes into it (a
    SQLite file is opened read-only, without the writer's pragmas; nothing is migrated).

    Raises ConfigError, nothing written, for a URL that does not parse, a SQLite path that is
    missing, a folder, an empty file, a file that is not SQLite, a database without the log's
    tables (`check_log`) or one that cannot be reached; DataError for a log written by a newer
    confroute (a schema revision unknown here). An older log is read as it is."""
    sa = require("sqlalchemy", "log")
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigError(f"decision log URL {shown(url)!r} is not a database URL; expected e.g. "
                          "sqlite:///decisions.db or postgresql://user@host/db") from exc
    if parsed.get_backend_name() != "sqlite":
        engine = connect(url, timeout_s)
    else:
        path = _sqlite_file(url, parsed.database)
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(
            uri, uri=True, timeout=timeout_s, check_same_thread=False))
    try:
        check_log(engine, url)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _sqlite_file(url: str, database: str | None) -> Path:
    """The SQLite file of `url`, checked to exist and to start as a SQLite database does."""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ConfigError(f"{url!r} names no SQLite file; {EXPECTED}, e.g. "
                          "sqlite:///confroute-decisions.db")
    path = Path(database).expanduser()
    if not path.exists():
        raise ConfigError(f"no decision log at {url}: {path} does not exist; {EXPECTED}")
    if not path.is_file():
        raise ConfigError(f"{url}: {path} is a folder, not a decision log; {EXPECTED}")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ConfigError(f"cannot read the decision log {path}: {exc}") from exc
    if head != SQLITE_HEADER:
        what = "an empty file" if not head else "not a SQLite database"
        raise ConfigError(f"{url}: {path} is {what}, not a decision log; {EXPECTED} "
                          "(nothing was written to it)")
    return path


def check_log(engine: Any, url: str | None = None) -> None:
    """ConfigError unless the database holds the decision log's tables (`decisions`,
    `outcomes`); DataError when its schema revision is newer than this confroute's. Reads
    only. `url` names the log in messages (default the engine's: a read-only SQLite engine's
    is a bare sqlite://, so `connect_reader` passes the user's)."""
    from sqlalchemy import exc, inspect

    url = shown(str(engine.url) if url is None else url)
    try:
        names = set(inspect(engine).get_table_names())
        found = current_revision(engine) if VERSION_TABLE in names else None
    except exc.SQLAlchemyError as error:
        raise ConfigError(f"cannot read the decision log at {url}: {one_line_error(error)}; "
                          f"{EXPECTED}") from error
    missing = [t for t in TABLES if t not in names]
    if missing:
        raise ConfigError(f"the database at {url} is not a decision log (no table "
                          f"{', '.join(missing)}); {EXPECTED} (nothing was written to it)")
    script = require("alembic.script", "log").ScriptDirectory.from_config(alembic_config())
    if found is not None and not _known(script, found):
        raise DataError(f"the decision log at {url} has schema revision {found}, which this "
                        f"confroute does not know (it knows up to {script.get_current_head()}):"
                        " it was written by a newer confroute. Upgrade confroute "
                        "(pip install -U confroute)")


def _sqlite_engine(sa: Any, url: str, database: str | None, timeout_s: float) -> Any:
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise ConfigError(f"an in-memory SQLite decision log ({url!r}) is lost when the process "
                          "exits; give a file, e.g. sqlite:///decisions.db")
    folder = Path(database).expanduser().parent
    if not folder.is_dir():
        raise ConfigError(f"decision log {url}: folder {folder} does not exist; create it or "
                          "give another path")
    _refuse_foreign(url, Path(database).expanduser())
    engine = sa.create_engine(url, connect_args={"timeout": timeout_s})

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers (export, gate) never block writes
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
        cursor.close()

    sa.event.listen(engine, "connect", pragmas)
    return engine


def _refuse_foreign(url: str, path: Path) -> None:
    """ConfigError, nothing written, when the writer's SQLite `path` exists but is no log:
    a folder, or a non-empty file that is not SQLite. A missing or empty file may become the
    log. Reads the file's first bytes only."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    fix = "give log.url a new file (e.g. sqlite:///confroute-decisions.db) or an existing log"
    if not path.is_file():
        raise ConfigError(f"{url}: {path} is a folder, not a decision log; {fix}")
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise ConfigError(f"{url}: {path} is not a SQLite database, not a decision log; "
                              f"{fix} (nothing was written to it)")
    # Another application's SQLite database is not told apart here: reading its schema
    # raced with the other writers of a shared log (in a fresh-clone test run, a read-only
    # connection met "disk I/O error" and an ordinary one "database disk image is malformed"
    # while other apps were creating the same file), and the service then refused its own log.


def alembic_config() -> Any:
    """An Alembic Config pointing at the migrations shipped in this package."""
    config = require("alembic.config", "log").Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this version of confroute knows."""
    script = require("alembic.script", "log").ScriptDirectory.from_config(alembic_config())
    return str(script.get_current_head())


def current_revision(engine: Any) -> str | None:
    """The database's schema revision (None: an empty database)."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def migrate(engine: Any, revision: str = "head") -> str:
    """Bring the database's schema to `revision` (default: the newest); returns the revision.

    An empty database gets every table, an older one is upgraded in one transaction (on
    PostgreSQL under an advisory lock, so proxies starting together migrate once). Raises
    DataError when the database was written by a newer confroute (a revision unknown here), and
    the database's own errors (sqlalchemy.exc.OperationalError: unreachable) as they are.
    """
    from alembic import command
    from alembic.migration import MigrationContext
    from sqlalchemy import text

    config = alembic_config()
    script = require("alembic.script", "log").ScriptDirectory.from_config(config)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        for found in context.get_current_heads():
            if not _known(script, found):
                raise DataError(
                    f"the decision log at {shown(str(engine.url))} has schema revision {found}, "
                    f"which this confroute does not know (it knows up to "
                    f"{script.get_current_head()}): it was written by a newer confroute. "
                    "Upgrade confroute (pip install -U confroute), or point the log at "
                    "another database")
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        return str(context.get_current_revision())


def _known(script: Any, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises ResolutionError / CommandError for an unknown revision
        return False


def check_reachable(engine: Any) -> None:
    """ConfigError naming the URL when the database cannot be reached now."""
    from sqlalchemy import exc, text

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except exc.SQLAlchemyError as exc_:
        raise ConfigError(f"cannot reach the decision log at {shown(str(engine.url))}: "
                          f"{one_line_error(exc_)}; start the database or fix the URL") from exc_


@contextlib.contextmanager
def reading(url: str) -> Iterator[Any]:
    """A connection to the existing log at `url`, opened by `connect_reader` (never written
    into, never migrated: an older log is read as it is); the engine is disposed after. Raises
    ConfigError naming the log (password hidden) when it cannot be read, in the block too."""
    from sqlalchemy import exc

    engine = connect_reader(url)
    try:
        with engine.connect() as conn:
            yield conn
    except exc.SQLAlchemyError as error:
        raise ConfigError(f"cannot read the decision log at {shown(url)}: "
                          f"{one_line_error(error)}") from error
    finally:
        engine.dispose()


def one_line_error(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background link."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
