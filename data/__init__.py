"""Data stage: label schema, labeled-data loading and validation, the built-in corpus, audio to transcripts."""
