"""Conventions both programs share: JSON logs and strict TOML config loading."""
