"""The coordinator config file: defaults, strict validation naming key and file, overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from novacron.coordinator import config as coordinator_config
from novacron.coordinator.config import (
    CoordinatorConfig,
    CoordinatorSettings,
    StoreSettings,
    load_config,
    parse_config,
    parse_host_port,
    render_config,
    with_overrides,
)
from novacron.protos.runtime.tomlconfig import ConfigError

FULL = """
[coordinator]
listen = "127.0.0.1:0"
db_path = "/srv/nc/coordinator.db"
insecure = true
metrics_listen = "[::1]:9200"
log_level = "debug"
stale_after_seconds = 30
unknown_after_seconds = 300.5

[tls]
ca_cert = "/pki/ca.crt"
server_cert = "/pki/server.crt"
server_key = "/pki/server.key"

[store]
retention_raw_seconds = 86400
downsample_step_seconds = 60
retention_downsampled_seconds = 864000
batch_max_frames = 500
batch_max_delay_seconds = 0.02
busy_timeout_seconds = 1
compact_interval_seconds = 600

[models]
signing_key = "/pki/model-signing.key"
models_dir = "/srv/nc/models"
"""


def load_text(tmp_path: Path, text: str) -> CoordinatorConfig:
    path = tmp_path / "coordinator.toml"
    path.write_text(text)
    return load_config(path)


def config_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text)
    assert error.value.source == str(tmp_path / "coordinator.toml")
    assert str(tmp_path / "coordinator.toml") in str(error.value)
    return error.value


def test_defaults_when_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator_config, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    config = load_config(None)
    assert config.source == "<defaults>"
    assert config.coordinator.listen == "0.0.0.0:7443"
    assert config.coordinator.db_path == Path("/var/lib/novacron-coordinator/coordinator.db")
    assert config.coordinator.insecure is False
    assert config.coordinator.metrics_listen == "127.0.0.1:9108"
    assert (config.coordinator.stale_after_seconds, config.coordinator.unknown_after_seconds) == (
        60.0,
        600.0,
    )
    assert config.store.retention_raw_seconds == 7 * 86400
    assert config.store.downsample_step_seconds == 300
    assert config.store.retention_downsampled_seconds == 90 * 86400
    assert (config.store.batch_max_frames, config.store.batch_max_delay_seconds) == (2000, 0.05)
    assert config.models.signing_key is None


def test_default_path_is_read_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "coordinator.toml"
    path.write_text('[coordinator]\nlisten = "10.0.0.5:7443"\n')
    monkeypatch.setattr(coordinator_config, "DEFAULT_CONFIG_PATH", path)
    config = load_config(None)
    assert (config.source, config.coordinator.listen) == (str(path), "10.0.0.5:7443")


def test_a_full_file(tmp_path: Path) -> None:
    config = load_text(tmp_path, FULL)
    assert config.coordinator == CoordinatorSettings(
        listen="127.0.0.1:0",
        db_path=Path("/srv/nc/coordinator.db"),
        insecure=True,
        metrics_listen="[::1]:9200",
        log_level="debug",
        stale_after_seconds=30.0,
        unknown_after_seconds=300.5,
    )
    assert config.tls.server_key == Path("/pki/server.key")
    assert config.store == StoreSettings(
        retention_raw_seconds=86400.0,
        downsample_step_seconds=60.0,
        retention_downsampled_seconds=864000.0,
        batch_max_frames=500,
        batch_max_delay_seconds=0.02,
        busy_timeout_seconds=1.0,
        compact_interval_seconds=600.0,
    )
    assert config.models.signing_key == Path("/pki/model-signing.key")
    assert config.models.models_dir == Path("/srv/nc/models")


def test_render_round_trips(tmp_path: Path) -> None:
    config = load_text(tmp_path, FULL)
    again = parse_config(tomllib.loads(render_config(config)), "rendered")
    assert (again.coordinator, again.tls, again.store, again.models) == (
        config.coordinator,
        config.tls,
        config.store,
        config.models,
    )
    defaults = parse_config({}, "<defaults>")
    assert "# signing_key = (not set)" in render_config(defaults)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    error = config_error(tmp_path, "[coordinator\nlisten = 1")
    assert "not valid TOML" in error.problem


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[database]\npath = 'x'\n", "database", "unknown section"),
        ("[coordinator]\nport = 7443\n", "coordinator.port", "unknown key"),
        ("[store]\nretention_days = 7\n", "store.retention_days", "unknown key"),
        ("[coordinator]\ninsecure = 'yes'\n", "coordinator.insecure", "expected true or false"),
        ("[coordinator]\nlog_level = 'loud'\n", "coordinator.log_level", "must be one of"),
        ("[coordinator]\nlisten = 'localhost'\n", "coordinator.listen", "expected HOST:PORT"),
        ("[coordinator]\nlisten = 'h:99999'\n", "coordinator.listen", "port 0..65535"),
        ("[coordinator]\nmetrics_listen = ':9108'\n", "coordinator.metrics_listen", "HOST:PORT"),
        ("[coordinator]\nstale_after_seconds = 0\n", "coordinator.stale_after_seconds", "> 0"),
        (
            "[coordinator]\nstale_after_seconds = 700\n",
            "coordinator.unknown_after_seconds",
            "must be > stale_after_seconds",
        ),
        ("[store]\nbatch_max_frames = 0\n", "store.batch_max_frames", "must be > 0"),
        ("[store]\nbatch_max_frames = 1.5\n", "store.batch_max_frames", "expected an integer"),
        ("[store]\nbatch_max_delay_seconds = -1\n", "store.batch_max_delay_seconds", "> 0"),
        (
            "[store]\ndownsample_step_seconds = 1e9\n",
            "store.downsample_step_seconds",
            "must be <= retention_raw_seconds",
        ),
        (
            "[store]\nretention_downsampled_seconds = 3600\n",
            "store.retention_downsampled_seconds",
            "must be > retention_raw_seconds",
        ),
        ("[tls]\nca_cert = 5\n", "tls.ca_cert", "expected a path string"),
        ("[models]\nsigning_key = ''\n", "models.signing_key", "expected a path string"),
        ("tls = 3\n", "tls", "expected a table"),
    ],
)
def test_errors_name_key_and_file(tmp_path: Path, text: str, key: str, problem: str) -> None:
    error = config_error(tmp_path, text)
    assert error.key == key
    assert problem in error.problem
    assert f"{key}: " in str(error)


def test_host_port_parsing() -> None:
    assert parse_host_port("0.0.0.0:7443") == ("0.0.0.0", 7443)
    assert parse_host_port("[::]:0") == ("::", 0)
    assert parse_host_port("coordinator.example:443") == ("coordinator.example", 443)
    for bad in ("7443", ":7443", "[]:1", "h:", "h:-1", "h:x"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_host_port(bad)


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    config = load_text(tmp_path, FULL)
    changed = with_overrides(
        config, listen="127.0.0.1:7000", db_path=Path("/tmp/x.db"), insecure=False
    )
    assert changed.coordinator.listen == "127.0.0.1:7000"
    assert changed.coordinator.db_path == Path("/tmp/x.db")
    assert changed.coordinator.insecure is False
    assert changed.coordinator.metrics_listen == "[::1]:9200"
    assert with_overrides(config) is config


def test_bad_override_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        with_overrides(load_text(tmp_path, FULL), metrics_listen="nowhere")
    assert (error.value.source, error.value.key) == ("command line", "--metrics-listen")
    assert "HOST:PORT" in error.value.problem


# ---------------------------------------------------------------------- [api], [placement]

API_AND_PLACEMENT = """
[coordinator]
insecure = true

[api]
listen = "127.0.0.1:7555"
inventory_file = "/etc/novacron/inventory.toml"

[placement]
cpu_allocation_ratio = 2.0
objectives = { spread = 1.0, energy = 0.5 }
weights = { free_memory_mib = 1.5 }
disabled_filters = ["vm_limit"]
"""


def test_api_and_placement_sections(tmp_path: Path) -> None:
    config = load_text(tmp_path, API_AND_PLACEMENT)
    assert config.api.listen == "127.0.0.1:7555"
    assert config.api.inventory_file == Path("/etc/novacron/inventory.toml")
    assert config.api_insecure  # inherits [coordinator] insecure while unset
    assert config.placement.cpu_allocation_ratio == 2.0
    assert dict(config.placement.objectives) == {"spread": 1.0, "energy": 0.5}
    assert dict(config.placement.weights) == {"free_memory_mib": 1.5}
    assert config.placement.disabled_filters == ("vm_limit",)
    explicit = load_text(tmp_path, API_AND_PLACEMENT.replace("[api]", "[api]\ninsecure = false"))
    assert not explicit.api_insecure
    defaults = coordinator_config.CoordinatorConfig()
    assert defaults.api.listen == "127.0.0.1:7444" and not defaults.api_insecure
    rendered = tomllib.loads(render_config(config))
    assert rendered["placement"]["objectives"] == {"spread": 1.0, "energy": 0.5}
    assert parse_config(rendered, config.source) == config


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[api]\nlisten = "nowhere"', "api.listen", "HOST:PORT"),
        ("[api]\ninsecure = 1", "api.insecure", "true or false"),
        ("[placement]\ncpu_allocation_ratio = 0", "placement.cpu_allocation_ratio", "> 0"),
        ("[placement]\nobjectives = { speed = 1.0 }", "placement.objectives", "speed"),
        ('[placement]\nobjectives = { spread = "a" }', "placement.objectives.spread", "number"),
        ("[placement]\nweights = 3", "placement.weights", "expected a table"),
        ("[placement]\nweights = { nope = 1.0 }", "placement.weights", "unknown factor id"),
        ('[placement]\ndisabled_filters = ["nope"]', "placement.disabled_filters", "nope"),
        ('[placement]\ndisabled_weighers = ["nope"]', "placement.disabled_weighers", "nope"),
        ("[placement]\nspeed = 1", "placement.speed", "unknown key"),
    ],
)
def test_api_and_placement_errors_name_the_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    error = config_error(tmp_path, text)
    assert error.key == key
    assert problem in error.problem


def test_api_listen_override(tmp_path: Path) -> None:
    config = with_overrides(load_text(tmp_path, API_AND_PLACEMENT), api_listen="127.0.0.1:0")
    assert config.api.listen == "127.0.0.1:0"
    with pytest.raises(ConfigError) as error:
        with_overrides(config, api_listen="nowhere")
    assert error.value.key == "--api-listen"
