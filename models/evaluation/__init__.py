"""Evaluation of the shipped models on public labelled data laid out like ../shared/data."""
