"""Strict TOML config loading into frozen dataclasses.

A config mistake must stop start-up with a message that names the file and the key
(``/etc/novacron/agent.toml: collectors.smart.timeout_seconds: expected a number > 0,
got 'fast'``), never be ignored and never surface later as an odd runtime error. The
dataclass *is* the schema: field names are the keys, annotations the types, defaults
the defaults, and ``__post_init__`` may raise ``ValueError`` for range checks.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ConfigError(Exception):
    """A config file, key or value that the program cannot start with."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse ``path``; a missing, unreadable or malformed file is a ConfigError."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), "", "config file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"not valid TOML: {exc}") from None


def read_config_file(path: Path | None, default_path: Path) -> tuple[dict[str, Any], str]:
    """The document to configure a program from, and where it came from.

    An explicit ``path`` must exist. Without one, ``default_path`` is read if it exists;
    otherwise the built-in defaults apply (an empty document, source ``<defaults>``), so
    a program runs unconfigured but never ignores a file that is there.
    """
    if path is None:
        if not default_path.exists():
            return {}, "<defaults>"
        path = default_path
    return read_toml(path), str(path)


def build(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, prefix, f"expected a table, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(source, _join(prefix, key), f"unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = convert(hints[name], value, source, _join(prefix, name))
    try:
        return cls(**values)
    except ValueError as exc:
        # __post_init__ range checks name the field as "field: problem".
        field, _, problem = str(exc).partition(": ")
        key = _join(prefix, field) if field in fields and problem else prefix
        raise ConfigError(
            source, key, problem if field in fields and problem else str(exc)
        ) from None


def convert(hint: Any, value: Any, source: str, key: str) -> Any:
    """Check ``value`` against annotation ``hint`` and return it in the field's type."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(option, value, source, key)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(source, key, " or ".join(errors))
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(source, key, f"must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (Mapping, dict):
        # A TOML table of str -> value (e.g. per-name weights); values are checked each.
        value_hint = get_args(hint)[1]
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, f"expected a table, got {_describe(value)}")
        return {
            str(name): convert(value_hint, item, source, _join(key, str(name)))
            for name, item in value.items()
        }
    if origin in (tuple, list):
        (item,) = get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected a list, got {_describe(value)}")
        items = [convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value, source, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, key, f"expected a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, got {_describe(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(source, key, f"expected a path string, got {_describe(value)}")
        return Path(value)
    raise TypeError(f"config schema uses unsupported type {hint!r} at {key}")


def positive(name: str, value: float | int | None) -> None:
    """Range check for ``__post_init__``: ``value`` must be > 0 when set."""
    if value is not None and value <= 0:
        raise ValueError(f"{name}: must be > 0, got {value}")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def to_toml_table(name: str, settings: Any) -> str:
    """Render one settings dataclass as a ``[name]`` TOML table (round-trips via build).

    Unset optional values (``None``) are written as comments, since TOML has no null.
    """
    lines = [f"[{name}]"]
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            lines.append(f"# {f.name} = (not set)")
        else:
            lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
