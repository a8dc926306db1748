"""Alembic revisions of the decision log, oldest first (``0001_…``)."""
