"""Serving stage: the live scoring service. Imports neither torch nor transformers."""
