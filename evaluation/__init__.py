"""Evaluation stage: QA reports and the promotion gate."""
