"""The log's schema: created on an empty database, upgraded from an older revision with its rows
kept, refused when written by a newer confroute; SQLite and a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, inspect, select, text

from confroute.errors import ConfigError, DataError
from confroute.traffic import store
from confroute.traffic.schema import VERSION_TABLE, decisions, metadata


def test_an_empty_database_gets_the_whole_schema(db_url: str) -> None:
    engine = store.connect(db_url)
    assert store.current_revision(engine) is None
    assert store.migrate(engine) == store.head_revision() == "0002"
    tables = set(inspect(engine).get_table_names())
    assert {"decisions", "outcomes", VERSION_TABLE} <= tables
    assert store.migrate(engine) == "0002"  # opening again changes nothing


def test_the_schema_module_matches_the_migrations(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = store.connect(db_url)
    store.migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []


def test_an_older_revision_is_upgraded_and_keeps_its_rows(db_url: str) -> None:
    engine = store.connect(db_url)
    store.migrate(engine, "0001")
    row = {"request_id": "r1", "time": 1.0, "endpoint": "chat", "artifact_id": "a",
           "artifact_sha256": "0" * 64, "text_sha256": "1" * 64, "text_chars": 2,
           "models": ["edge", "cloud"], "chosen_model": "edge"}
    with engine.begin() as conn:
        conn.execute(insert(decisions), [row])
    assert "ix_decisions_time" not in {i["name"] for i in inspect(engine).get_indexes("decisions")}
    assert store.migrate(engine) == "0002"
    assert "ix_decisions_time" in {i["name"] for i in inspect(engine).get_indexes("decisions")}
    with engine.connect() as conn:
        assert conn.execute(select(decisions.c.models)).scalar_one() == ["edge", "cloud"]


def test_a_database_of_a_newer_revision_is_refused(db_url: str) -> None:
    engine = store.connect(db_url)
    store.migrate(engine)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    with pytest.raises(DataError, match="revision 0099, which this confroute does not know "
                                        r"\(it knows up to 0002\).*newer confroute"):
        store.migrate(engine)


@pytest.mark.parametrize("url, message", [
    ("sqlite://", "in-memory SQLite"),
    ("sqlite:///:memory:", "in-memory SQLite"),
    ("sqlite:////no/such/folder/log.db", "folder /no/such/folder does not exist"),
    ("postgresql://u@h:notaport/db", "not a database URL"),
])
def test_unusable_urls_are_refused_with_the_fix(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        store.connect(url)


@pytest.mark.parametrize("url, fix", [
    ("mysql://u@127.0.0.1/db", "install the SQLAlchemy driver for mysql"),
    ("mssql+pyodbc://u@127.0.0.1/db", "install the SQLAlchemy driver for mssql"),
])
def test_a_missing_driver_names_the_fix_for_that_database(url: str, fix: str) -> None:
    from confroute.errors import MissingExtraError

    with pytest.raises(MissingExtraError, match=fix) as raised:
        store.connect(url)
    assert "confroute[postgresql]" not in str(raised.value)  # not PostgreSQL's fix for MySQL


@pytest.mark.parametrize("kind, message", [
    ("folder", "is a folder, not a decision log"),
    ("text", "is not a SQLite database, not a decision log"),
])
def test_the_writer_refuses_a_file_that_is_not_a_log_and_leaves_it_as_it_was(
        kind: str, message: str, tmp_path) -> None:
    """`confroute serve --log.url` at a folder or a text file stops with one line (it was a
    traceback, or a log that never wrote); an empty file may still become a log. Another
    app's SQLite database is not told apart (store._refuse_foreign says why)."""
    path = tmp_path / f"{kind}.db"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_text("prompt,label\nhi,0\n")
    before = {p.name: p.read_bytes() if p.is_file() else None for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError, match=message):
        store.connect(f"sqlite:///{path}")
    assert {p.name: p.read_bytes() if p.is_file() else None for p in tmp_path.iterdir()} == before
    (tmp_path / "empty.db").write_bytes(b"")
    store.migrate(store.connect(f"sqlite:///{tmp_path / 'empty.db'}"))


def test_passwords_never_show() -> None:
    assert store.shown("postgresql://me:s3cret@db.example/log") == \
        "postgresql://me:***@db.example/log"
    assert store.is_database_url("postgresql+psycopg://h/db")
    assert store.is_database_url("sqlite:///x.db")
    assert not store.is_database_url("runs/labels.parquet")
    assert not store.is_database_url("https://huggingface.co/datasets/x")


def test_an_unreachable_server_is_named() -> None:
    from databases import free_port

    engine = store.connect(f"postgresql+psycopg://me:s3cret@127.0.0.1:{free_port()}/log", 1.0)
    with pytest.raises(ConfigError, match=r"cannot reach the decision log at "
                                          r"postgresql\+psycopg://me:\*\*\*@127.0.0.1"):
        store.check_reachable(engine)
