"""The agent config file: defaults, strict validation naming key and file, overrides."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from novacron.agent import config as agent_config
from novacron.agent.collectors.base import CollectorSettings, registry
from novacron.agent.config import (
    AgentConfig,
    AgentSettings,
    load_config,
    parse_config,
    with_overrides,
)
from novacron.protos.runtime.tomlconfig import ConfigError


def load_text(tmp_path: Path, text: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return load_config(path)


def config_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text)
    assert error.value.source == str(tmp_path / "agent.toml")
    return error.value


def test_defaults_when_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_config, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    config = load_config(None)
    assert config.source == "<defaults>"
    assert config.agent == AgentSettings()
    assert config.node_id == socket.gethostname()
    assert config.context.sysfs_root == Path("/sys")
    assert config.context.procfs_root == Path("/proc")
    known = registry()
    assert set(config.collectors) == set(known)
    for name, settings in config.collectors.items():
        assert type(settings) is known[name].settings_type
        assert settings.enabled is known[name].default_enabled
    assert "host" in config.enabled_collectors()


def test_default_path_is_read_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nnode_id = "hv-017"\n')
    monkeypatch.setattr(agent_config, "DEFAULT_CONFIG_PATH", path)
    config = load_config(None)
    assert config.source == str(path)
    assert config.node_id == "hv-017"


def test_a_full_file(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
[agent]
node_id = "hv-017"
interval_seconds = 5
collector_timeout_seconds = 2.5
sysfs_root = "/fixture/sys"
procfs_root = "/fixture/proc"
log_level = "debug"

[collectors.host]
enabled = false
interface_exclude_pattern = "^(lo|virbr)"
""",
    )
    assert config.agent == AgentSettings(
        "hv-017", 5.0, 2.5, Path("/fixture/sys"), Path("/fixture/proc"), "debug"
    )
    assert config.context.sysfs_root == Path("/fixture/sys")
    host = config.collectors["host"]
    assert host.enabled is False
    assert host.interface_exclude_pattern == "^(lo|virbr)"  # type: ignore[attr-defined]
    assert "host" not in config.enabled_collectors()


def test_a_collector_table_without_enabled_keeps_its_default(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[collectors.host]\ninterface_exclude_pattern = ""\n')
    assert config.collectors["host"].enabled is registry()["host"].default_enabled


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: config file not found"


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[agent\nnode_id = 1\n")
    assert "not valid TOML" in error.problem


def test_unknown_section(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[agnet]\nnode_id = 'x'\n")
    assert error.key == "agnet"
    assert (
        "unknown section (known: agent, collectors, scoring, health, coordinator)" in error.problem
    )


def test_unknown_key_in_agent(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[agent]\ninterval = 5\n")
    assert error.key == "agent.interval"
    assert "interval_seconds" in error.problem  # the known keys are listed


def test_unknown_collector(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[collectors.nosuch]\nenabled = true\n")
    assert error.key == "collectors.nosuch"
    assert "unknown collector (known: " in error.problem
    assert "host" in error.problem
    assert "cpuinfo" in error.problem


def test_unknown_key_in_a_collector(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[collectors.host]\ncolour = 'red'\n")
    assert error.key == "collectors.host.colour"


def test_collectors_must_be_tables(tmp_path: Path) -> None:
    assert config_error(tmp_path, "collectors = 3\n").key == "collectors"
    error = config_error(tmp_path, "[collectors]\nhost = 3\n")
    assert error.key == "collectors.host"
    assert "expected a table" in error.problem


def test_wrong_type(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[agent]\ninterval_seconds = 'fast'\n")
    assert error.key == "agent.interval_seconds"
    assert error.problem == "expected a number, got str 'fast'"
    error = config_error(tmp_path, "[collectors.host]\nenabled = 'yes'\n")
    assert (error.key, error.problem) == (
        "collectors.host.enabled",
        "expected true or false, got str 'yes'",
    )


def test_bad_literal(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[agent]\nlog_level = 'loud'\n")
    assert error.key == "agent.log_level"
    assert error.problem == "must be one of ['debug', 'info', 'warning', 'error'], got 'loud'"


@pytest.mark.parametrize(
    ("line", "key", "problem"),
    [
        ("interval_seconds = 0", "agent.interval_seconds", "must be > 0, got 0.0"),
        ("collector_timeout_seconds = -1", "agent.collector_timeout_seconds", "must be > 0"),
        ("node_id = '  '", "agent.node_id", "must not be empty"),
    ],
)
def test_range_checks_name_the_key(tmp_path: Path, line: str, key: str, problem: str) -> None:
    error = config_error(tmp_path, f"[agent]\n{line}\n")
    assert error.key == key
    assert problem in error.problem
    assert f"{tmp_path / 'agent.toml'}: {key}: " in str(error)


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[agent]\nsysfs_root = '/file/sys'\n")
    overridden = with_overrides(
        config,
        sysfs_root=Path("/flag/sys"),
        procfs_root=Path("/flag/proc"),
        only_collectors=["host"],
        collector_settings={"host": {"interface_exclude_pattern": ""}},
    )
    assert overridden.context.sysfs_root == Path("/flag/sys")
    assert overridden.context.procfs_root == Path("/flag/proc")
    assert overridden.enabled_collectors() == ["host"]
    assert overridden.collectors["host"].interface_exclude_pattern == ""  # type: ignore[attr-defined]
    assert config.context.sysfs_root == Path("/file/sys")  # the original is unchanged


def test_no_overrides_change_nothing(tmp_path: Path) -> None:
    config = load_text(tmp_path, "")
    assert with_overrides(config) == config


def test_unknown_collector_in_only_collectors() -> None:
    with pytest.raises(ConfigError) as error:
        with_overrides(parse_config({}, "test"), only_collectors=["host", "nosuch"])
    assert (error.value.source, error.value.key) == ("--collectors", "nosuch")


def test_settings_are_frozen() -> None:
    settings = parse_config({}, "test").collectors["host"]
    assert isinstance(settings, CollectorSettings)
    with pytest.raises(AttributeError):
        settings.enabled = False  # type: ignore[misc]


def test_collector_interval_must_be_positive_and_smart_defaults_to_a_minute() -> None:
    import pytest as _pytest

    from novacron.agent.config import parse_config
    from novacron.protos.runtime.tomlconfig import ConfigError

    assert parse_config({}, "t").collectors["smart"].interval_seconds == 60.0
    assert parse_config({}, "t").collectors["host"].interval_seconds is None
    with _pytest.raises(ConfigError, match=r"t: collectors.hwmon.interval_seconds: must be > 0"):
        parse_config({"collectors": {"hwmon": {"interval_seconds": 0}}}, "t")
