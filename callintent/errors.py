"""Errors that mean "the input is wrong", as opposed to bugs.

The CLI prints a :class:`UserError` as one readable line and exits non-zero; the service maps
it to an HTTP 4xx JSON body. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from a person or a calling system; the message says what and where."""
