"""Alembic migrations of the decision log (run by ``CallLogStore.migrate``; ``env.py`` is Alembic's entry)."""
