"""``novacron-agent collect`` shows scores, and ``--state-dir`` builds history across runs.

The agent runs as a real subprocess on a whole fixture node with one failing disk, with
tiny models (trained and exported by the test) as its models directory.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from novacron.agent.features.state_file import read_state
from novacron.agent.features.store import STATE_FILE_NAME
from tests.agent.test_cli import AGENT
from tests.agent.tiny_models import write_tiny_models
from tests.fixtures.node import FixtureNode, build_fixture_node


@dataclass(frozen=True)
class Setup:
    node: FixtureNode
    config: Path
    state_dir: Path

    def run(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        flags = self.node.agent_args()
        flags[flags.index("--config") + 1] = str(config or self.config)
        return subprocess.run(
            [AGENT, "collect", "--once", *args, *flags, "--collectors", "host,smart,hwmon"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=self.node.env(),
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("scores")
    node = build_fixture_node(root / "node", domains=3, disks=4, failing_disks=1)
    models = write_tiny_models(root / "models").directory
    config = root / "agent.toml"
    config.write_text(f'[agent]\nnode_id = "score-node"\n[scoring]\nmodels_dir = "{models}"\n')
    return Setup(node, config, root / "state")


@pytest.fixture(scope="module")
def runs(setup: Setup) -> list[subprocess.CompletedProcess[str]]:
    """Two --once runs sharing a state directory."""
    return [setup.run("--json", "--state-dir", str(setup.state_dir)) for _ in range(2)]


def _scores(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    scores: dict[str, Any] = document["scores"]
    return scores


def test_json_has_a_top_level_scores_key(runs: list[subprocess.CompletedProcess[str]]) -> None:
    scores = _scores(runs[0])
    assert set(scores) == {
        "timestamp_seconds",
        "failure_predictions",
        "anomalies",
        "node_risk",
        "riskiest_disk",
        "missing_models",
        "scoring_seconds",
    }
    assert scores["missing_models"] == []
    models = {(p["model"], p["label"]) for p in scores["failure_predictions"]}
    assert ("node-failure-30m", "score-node") in models
    assert ("node-failure-24h", "score-node") in models
    assert {label for model, label in models if model == "disk-failure-7d"} == {
        "/dev/sda",
        "/dev/sdb",
        "/dev/nvme0",
        "/dev/sdc",
    }
    for p in scores["failure_predictions"]:
        assert 0.0 <= p["probability"] <= 1.0
        assert p["ci_low"] <= p["ci_high"]
        assert p["model_version"] == "2026.01.01.1"
    assert scores["riskiest_disk"]["label"] == "/dev/sda"  # the injected failing disk
    (sda,) = [p for p in scores["failure_predictions"] if p["label"] == "/dev/sda"]
    assert sda["contributing_factors"][0]["feature"] in {
        "reallocated_sectors_last_24h",
        "current_pending_sectors_last_24h",
    }
    (node_anomaly,) = scores["anomalies"]  # libvirt not collected: no VM rows
    assert node_anomaly["scope"] == "node" and node_anomaly["severity"] in {
        "none",
        "warning",
        "critical",
    }


def test_state_dir_builds_history_across_once_runs(
    setup: Setup, runs: list[subprocess.CompletedProcess[str]]
) -> None:
    assert "feature windows restored" not in runs[0].stderr
    assert "feature windows restored" in runs[1].stderr
    meta, subjects = read_state(setup.state_dir / STATE_FILE_NAME)
    assert meta["node_id"] == "score-node"
    node_index = [s["scope"] for s in meta["subjects"]].index("node")
    assert len(subjects[node_index]["fine_t"]) == 2  # one sample per run
    assert sorted(s["scope"] for s in meta["subjects"]).count("disk") == 4


def test_table_has_a_scores_block(setup: Setup) -> None:
    result = setup.run()
    assert result.returncode == 0, result.stderr
    block = result.stdout.split("\n== scores\n", 1)[1]
    assert "  node failure    30m  p=" in block
    assert "  node failure    24h  p=" in block
    assert "95% CI" in block
    assert "  riskiest disk  /dev/sda (REDACTED@/dev/sda)" in block
    assert "    because      reallocated_sectors_last_24h = 2144" in block or (
        "    because      current_pending_sectors_last_24h = 72" in block
    )
    assert "  node risk      from " in block
    assert "  anomaly node   score " in block
    assert "no model for" not in block


def test_scoring_can_be_switched_off(setup: Setup, tmp_path: Path) -> None:
    config = tmp_path / "off.toml"
    config.write_text('[agent]\nnode_id = "score-node"\n[scoring]\nenabled = false\n')
    as_json = setup.run("--json", config=config)
    assert _scores(as_json) is None
    table = setup.run(config=config)
    assert "scoring disabled" in table.stdout.split("== scores", 1)[1]


def test_bad_scoring_config_exits_2(setup: Setup, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[scoring]\nenabled = 'yes'\n")
    result = setup.run(config=config)
    assert result.returncode == 2
    assert f"{config}: scoring.enabled: expected true or false" in result.stderr
