"""What the agent does with each sample after collecting it: features, then scores.

:class:`NodeIntelligence` ties the feature windows (:mod:`.features.store`) to the
local models (:mod:`.scoring`) and to the state directory, so the CLI and the daemon
run exactly the same steps: restore the windows once, then per cycle ``observe`` (add
the sample, score the features) and ``save``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from novacron.agent.config import AgentConfig
from novacron.agent.features.store import STATE_FILE_NAME, FeatureSnapshot, NodeFeatures
from novacron.agent.sample import NodeSample
from novacron.agent.scoring import NodeScores, Scorer

log = logging.getLogger(__name__)


class NodeIntelligence:
    def __init__(self, config: AgentConfig, *, state_dir: Path | None) -> None:
        """``state_dir`` None: windows live in memory only (``collect --once`` default)."""
        self.features = NodeFeatures(
            config.node_id, interval_hint_seconds=config.agent.interval_seconds
        )
        self.scorer = Scorer.load(config.scoring.models_dir) if config.scoring.enabled else None
        self.state_path = state_dir / STATE_FILE_NAME if state_dir is not None else None
        self.last_snapshot: FeatureSnapshot | None = None

    def restore(self, now: float) -> bool:
        """Load the saved windows, if any; never raises (see NodeFeatures.restore)."""
        if self.state_path is None:
            return False
        return self.features.restore(self.state_path, now)

    def observe(self, sample: NodeSample) -> NodeScores | None:
        """Add the sample to the windows and score them; None when scoring is off."""
        self.features.update(sample)
        self.last_snapshot = self.features.snapshot()
        if self.scorer is None:
            return None
        return self.scorer.score(self.last_snapshot)

    def save(self, now: float) -> bool:
        """Persist the windows (no-op without a state directory); never raises."""
        if self.state_path is None:
            return False
        return self.features.save(self.state_path, now)
