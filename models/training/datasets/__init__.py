"""Loaders that turn public labelled data sets into schema feature rows for training."""
