"""Which data set a labeled row comes from (its *data source*), as opposed to its ad ``source``.

The labeled schema's ``source`` column means two different things. Built-in corpus rows carry the
ad or traffic source the call was tracked to (``google_ads``, ``facebook_ads``, ``referral``…), the
same metadata the decision policy matches on; the real-text sets in ``../shared/data`` carry the
name of the corpus they came from (``sgd``, ``clinc150``). Anything that balances or reports *by
data set* (the temperature fit, ECE per source, a cross-source benchmark) needs the second meaning,
so it asks :func:`data_source` rather than reading ``source``:

==========================================  ===============================================
row                                          data source
==========================================  ===============================================
``call_id`` starts with ``synth-``           ``corpus`` (the built-in generator's ids)
``extra.origin`` is ``call_log``             ``call_log`` (real calls from the service's log)
``source`` is a real-text set name           that name (:data:`REAL_TEXT_SOURCES`)
anything else                                ``other`` (e.g. a customer's own labeled calls)
==========================================  ===============================================

Rules are tried top to bottom: a corpus row rendered as ASR text keeps its ``synth-`` id and stays
``corpus``. Ad sources never become data sources, so the corpus's ten ad values do not split it into
ten "sources" that would each weigh as much as a whole real set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

#: The built-in corpus (``data.synth``), whatever ad source its rows are tracked to.
CORPUS = "corpus"
#: Real calls exported from the service's call log (``extra.origin == "call_log"``).
CALL_LOG = "call_log"
#: Rows that match no other rule.
OTHER = "other"

#: ``call_id`` prefix of built-in corpus rows (``synth-000000``…, see ``data.synth``).
CORPUS_ID_PREFIX = "synth-"

#: ``source`` values that name a real-text set (``../shared/data/README.md``).
REAL_TEXT_SOURCES = ("sgd", "clinc150")


def data_source(call_id: str, source: str = "", extra: str | dict | None = None) -> str:
    """The data set a row comes from (see the module table).

    Args:
        call_id: The row's ``call_id``.
        source: The row's ``source`` column (ad source or real-set name; ``""`` when none).
        extra: The row's ``extra`` column (a JSON object string, as ``data.dataset`` stores it,
            or a dict; None or ``""`` = empty).

    Returns:
        ``corpus``, ``call_log``, a :data:`REAL_TEXT_SOURCES` name, or ``other``.
    """
    if call_id.startswith(CORPUS_ID_PREFIX):
        return CORPUS
    if _origin(extra) == CALL_LOG:
        return CALL_LOG
    name = (source or "").strip().lower()
    if name in REAL_TEXT_SOURCES:
        return name
    return OTHER


def data_sources(call_ids: Sequence[str], sources: Sequence[str] | None = None,
                 extras: Sequence[str | dict | None] | None = None) -> list[str]:
    """:func:`data_source` of every row, column-wise (e.g. a ``datasets.Dataset``'s columns).

    Args:
        call_ids: ``call_id`` per row.
        sources: ``source`` per row (None = none known).
        extras: ``extra`` per row (None = none known).

    Returns:
        One data source per row.

    Raises:
        ValueError: columns of different lengths.
    """
    n = len(call_ids)
    sources = list(sources) if sources is not None else [""] * n
    extras = list(extras) if extras is not None else [None] * n
    if len(sources) != n or len(extras) != n:
        raise ValueError(f"{n} call_ids but {len(sources)} sources and {len(extras)} extras")
    return [data_source(c, s or "", e) for c, s, e in zip(call_ids, sources, extras)]


def _origin(extra: str | dict | None) -> str:
    if not extra:
        return ""
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            return ""
    return str(extra.get("origin", "")) if isinstance(extra, dict) else ""


__all__ = ["CALL_LOG", "CORPUS", "CORPUS_ID_PREFIX", "OTHER", "REAL_TEXT_SOURCES", "data_source", "data_sources"]
