"""Alembic's environment for the decision log: runs on the connection `store.migrate` hands it
(never on a URL from an ini file), with the log's own version table."""

from alembic import context

from confroute.traffic.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it, which batch mode does for later revisions
context.configure(connection=connection, target_metadata=metadata,
                  version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
