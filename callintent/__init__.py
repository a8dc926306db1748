"""callintent: find buying intent in the opening 30 seconds of a call."""

__version__ = "0.1.0"
