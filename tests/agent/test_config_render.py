"""``novacron-agent config`` prints a complete config that loads back unchanged."""

from __future__ import annotations

import tomllib
from pathlib import Path

from novacron.agent.config import load_config, parse_config, render_config, with_overrides


def test_rendered_config_round_trips(tmp_path: Path) -> None:
    original = with_overrides(
        parse_config({"agent": {"node_id": "hv-1", "interval_seconds": 5}}, "test"),
        sysfs_root=Path("/fixture/sys"),
    )
    path = tmp_path / "agent.toml"
    path.write_text(render_config(original))
    reloaded = load_config(path)
    assert reloaded.agent == original.agent
    assert reloaded.collectors == original.collectors
    assert set(tomllib.loads(path.read_text())["collectors"]) == set(original.collectors)


def test_unset_optional_values_are_comments() -> None:
    text = render_config(parse_config({}, "test"))
    assert "# node_id = (not set)" in text
