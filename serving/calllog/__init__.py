"""The decision log: every scored call, the outcome a CRM reports for it, and what they measure.

* :mod:`serving.calllog.records` — the typed values (:class:`CallRecord`, :class:`Outcome`, :class:`LoggedCall`).
* :mod:`serving.calllog.store` — SQLAlchemy Core tables and the read/write API (SQLite or PostgreSQL).
* :mod:`serving.calllog.migrations` — Alembic environment and versions (``upgrade head`` at start).
* :mod:`serving.calllog.writer` — the bounded write-behind queue the service scores through.
* :mod:`serving.calllog.routes` — ``POST /calls/{id}/outcome`` and ``GET /calls/{id}``.
* :mod:`serving.calllog.report` — conversion of buying calls per source/campaign (typed dataclasses).
* :mod:`evaluation.calls_export` — logged calls as labeled training rows.

Nothing here imports torch, pandas or the evaluation stage; the HTML page of the report is
``evaluation/calls_report.py``.
"""
