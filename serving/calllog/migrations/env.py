"""Alembic environment of the decision log.

Run by :meth:`serving.calllog.store.CallLogStore.migrate` (the service at start, and every
``callintent report calls`` / ``calls export``), which passes its open connection in
``config.attributes["connection"]``. To migrate a database before a deploy without starting the
service, any of those does it, or Alembic itself with an ini whose ``script_location`` is this
folder: ``alembic -c calllog.ini -x url=postgresql+psycopg://user@host/db upgrade head``
(``-x url=…`` or the ini's ``sqlalchemy.url`` names the database when no connection is passed in).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from serving.calllog.store import VERSION_TABLE, metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several workers (or replicas) start at once: one migrates, the others wait for it here
        # and then find the schema at head. Released at the end of the transaction.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(7166081731)"))
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as own:
        _run(own)
