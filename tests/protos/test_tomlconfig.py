"""Strict TOML loading into frozen dataclasses: every mistake names file and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from novacron.protos.runtime.tomlconfig import (
    ConfigError,
    build,
    convert,
    positive,
    read_toml,
)


@dataclass(frozen=True)
class Limits:
    max_items: int = 10

    def __post_init__(self) -> None:
        positive("max_items", self.max_items)


@dataclass(frozen=True)
class Example:
    enabled: bool = True
    count: int = 1
    ratio: float = 0.5
    name: str = "x"
    path: Path = Path("/tmp")
    mode: Literal["fast", "safe"] = "safe"
    label: str | None = None
    tags: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.name == "forbidden":
            raise ValueError("name: is reserved")
        if self.name == "global":
            raise ValueError("the whole table is inconsistent")


def build_example(data: dict[str, object]) -> Example:
    return build(Example, data, "/etc/x.toml", "section")


def problem(data: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        build_example(data)
    return error.value


def test_every_supported_type() -> None:
    built = build_example(
        {
            "enabled": False,
            "count": 3,
            "ratio": 2,  # an integer is a fine float
            "name": "n",
            "path": "/var/lib",
            "mode": "fast",
            "label": "l",
            "tags": ["a", "b"],
            "limits": {"max_items": 5},
        }
    )
    assert built == Example(
        False, 3, 2.0, "n", Path("/var/lib"), "fast", "l", ("a", "b"), Limits(5)
    )
    assert isinstance(built.ratio, float)


def test_defaults_when_empty() -> None:
    assert build_example({}) == Example()


def test_unknown_key_lists_the_known_keys() -> None:
    error = problem({"colour": "red"})
    assert error.key == "section.colour"
    assert error.source == "/etc/x.toml"
    assert "unknown key (known keys: count, enabled, label, limits" in error.problem
    assert str(error).startswith("/etc/x.toml: section.colour: unknown key")


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({"enabled": 1}, "section.enabled", "expected true or false, got int 1"),
        ({"count": True}, "section.count", "expected an integer, got bool True"),
        ({"count": 1.5}, "section.count", "expected an integer, got float 1.5"),
        ({"ratio": "fast"}, "section.ratio", "expected a number, got str 'fast'"),
        ({"ratio": False}, "section.ratio", "expected a number, got bool False"),
        ({"name": 3}, "section.name", "expected a string, got int 3"),
        ({"path": ""}, "section.path", "expected a path string, got str ''"),
        ({"mode": "turbo"}, "section.mode", "must be one of ['fast', 'safe'], got 'turbo'"),
        ({"label": 7}, "section.label", "expected a string, got int 7"),
        ({"tags": "a"}, "section.tags", "expected a list, got str 'a'"),
        ({"tags": ["a", 2]}, "section.tags[1]", "expected a string, got int 2"),
        ({"limits": 3}, "section.limits", "expected a table, got int 3"),
        ({"limits": {"max_items": 0}}, "section.limits.max_items", "must be > 0, got 0"),
        ({"name": "forbidden"}, "section.name", "is reserved"),
        ({"name": "global"}, "section", "the whole table is inconsistent"),
    ],
)
def test_wrong_values_name_the_key(data: dict[str, object], key: str, message: str) -> None:
    error = problem(data)
    assert (error.key, error.problem) == (key, message)


def test_none_for_an_optional_value() -> None:
    assert convert(str | None, None, "f", "k") is None


def test_table_that_is_not_a_table() -> None:
    with pytest.raises(ConfigError) as error:
        build(Example, ["not", "a", "table"], "f.toml", "section")  # type: ignore[arg-type]
    assert error.value.key == "section"
    assert "expected a table, got list" in error.value.problem


def test_unsupported_schema_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="unsupported type"):
        convert(bytes, b"x", "f", "k")


@pytest.mark.parametrize("value", [0, -1, -0.5])
def test_positive_rejects(value: float) -> None:
    with pytest.raises(ValueError, match=f"interval_seconds: must be > 0, got {value}"):
        positive("interval_seconds", value)


@pytest.mark.parametrize("value", [1, 0.001, None])
def test_positive_accepts(value: float | None) -> None:
    positive("interval_seconds", value)


def test_read_toml(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nnode_id = "hv-1"\n')
    assert read_toml(path) == {"agent": {"node_id": "hv-1"}}


def test_read_toml_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as error:
        read_toml(path)
    assert error.value.source == str(path)
    assert str(error.value) == f"{path}: config file not found"


def test_read_toml_malformed_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[agent]\nnode_id = "unterminated\n')
    with pytest.raises(ConfigError) as error:
        read_toml(path)
    assert str(error.value).startswith(f"{path}: not valid TOML: ")
    assert "line 2" in str(error.value)


def test_read_toml_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        read_toml(tmp_path)  # a directory
    assert "cannot read config file" in str(error.value)


def test_read_config_file_explicit_default_and_built_in(tmp_path: Path) -> None:
    from novacron.protos.runtime.tomlconfig import read_config_file

    default = tmp_path / "default.toml"
    assert read_config_file(None, default) == ({}, "<defaults>")
    default.write_text("[a]\nx = 1\n")
    assert read_config_file(None, default) == ({"a": {"x": 1}}, str(default))
    with pytest.raises(ConfigError, match="config file not found"):
        read_config_file(tmp_path / "missing.toml", default)
