"""Weight learning: hidden weights are recovered and beat the defaults; noise is refused."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from novacron.coordinator.cli import main
from novacron.coordinator.placement.engine import Policy, select
from novacron.coordinator.placement.hosts_synthetic import synthetic_hosts
from novacron.coordinator.placement.learn import (
    Example,
    NotEnoughOutcomes,
    learn_weights,
    learning_set,
)
from novacron.coordinator.placement.outcomes import Outcome, OutcomeLog
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings


def synthetic_examples(
    count: int, defaults: np.ndarray, hidden: np.ndarray | None, seed: int = 0, k: int = 6
) -> list[Example]:
    """The engine picks the best host by ``defaults``; the outcome follows ``hidden``
    (success odds grow with the host's lead over the others) or, without it, a coin
    with a fixed 80 % success rate that ignores the hosts entirely."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(count):
        hosts = rng.random((k, len(defaults)))
        chosen = int(np.argmax(hosts @ defaults))
        others = np.delete(hosts, chosen, axis=0)
        probability = 0.8
        if hidden is not None:
            lead = (hosts[chosen] - others.mean(0)) @ hidden
            probability = float(1 / (1 + np.exp(-(0.5 + 4 * lead))))
        examples.append(Example(float(i), hosts[chosen], others, bool(rng.random() < probability)))
    return examples


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hidden_weights_beat_the_defaults(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    defaults, hidden = np.full(8, 1 / 8), rng.normal(size=8)
    result = learn_weights(
        [f"f{i}" for i in range(8)], defaults, synthetic_examples(400, defaults, hidden, seed)
    )
    assert result.beats_default
    assert result.learned_metrics.log_loss < result.default_metrics.log_loss
    assert result.log_loss_gain_ci[0] > 0
    learned = np.array(list(result.learned_weights.values()))
    assert np.corrcoef(learned, hidden)[0, 1] > 0.8  # the direction is recovered
    assert np.abs(learned).sum() == pytest.approx(np.abs(defaults).sum())
    assert (result.train_outcomes, result.test_outcomes) == (280, 120)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_noise_is_not_applied(seed: int) -> None:
    defaults = np.full(8, 1 / 8)
    result = learn_weights(
        [f"f{i}" for i in range(8)], defaults, synthetic_examples(400, defaults, None, seed)
    )
    assert not result.beats_default
    assert "keeping the defaults" in result.verdict


def test_too_few_or_one_sided_outcomes() -> None:
    defaults = np.full(3, 1 / 3)
    with pytest.raises(NotEnoughOutcomes, match="usable outcomes"):
        learn_weights(["a", "b", "c"], defaults, synthetic_examples(30, defaults, None))
    same = [
        Example(e.decided_at_seconds, e.chosen, e.alternatives, True)
        for e in synthetic_examples(100, defaults, None)
    ]
    with pytest.raises(NotEnoughOutcomes, match="every training outcome is a success"):
        learn_weights(["a", "b", "c"], defaults, same)


def test_held_out_outcomes_are_the_latest() -> None:
    """Time order, not file order: the newest 30 % are held out."""
    defaults = np.full(4, 0.25)
    examples = synthetic_examples(100, defaults, np.array([1.0, -1.0, 0.5, 0.0]))
    shuffled = [examples[i] for i in np.random.default_rng(0).permutation(100)]
    a = learn_weights(list("abcd"), defaults, examples)
    b = learn_weights(list("abcd"), defaults, shuffled)
    assert a == b


# ------------------------------------------------------------- through the database


def record_decisions(db: Path, hidden_seed: int | None, count: int = 500) -> None:
    """Real engine decisions on a synthetic fleet, stored with outcomes on a random one
    of the returned hosts; success follows hidden weights over the stored factors (or
    is an 80 % coin when ``hidden_seed`` is None)."""
    settings = PlacementSettings()
    policy = Policy.from_settings(settings)
    hosts = synthetic_hosts(120, seed=3, settings=settings)
    rng = np.random.default_rng(7)
    log = OutcomeLog(db)
    hidden: np.ndarray | None = None
    for i in range(count):
        request = PlacementRequest(vcpus=int(rng.choice([1, 2, 4])), memory_mib=2048)
        decision = select(hosts, request, policy, max_results=6)
        log.record_decision(f"r{i}", request, decision, decided_at_seconds=1000.0 + i)
        vectors = np.array(
            [[score.normalized for score in ranked.factor_scores] for ranked in decision.hosts]
        )
        pick = int(rng.integers(len(decision.hosts)))
        if hidden_seed is None:
            success = rng.random() < 0.8
        else:
            if hidden is None:
                hidden = np.random.default_rng(hidden_seed).normal(size=(vectors.shape[1],))
            lead = vectors[pick] - np.delete(vectors, pick, axis=0).mean(axis=0)
            success = rng.random() < 1 / (1 + np.exp(-(0.5 + 6 * lead @ hidden / 4)))
        log.record_outcome(
            f"r{i}",
            decision.hosts[pick].host_id,
            Outcome.SLA_MET if success else Outcome.SLA_VIOLATED,
            occurred_at_seconds=2000.0 + i,
            recorded_at_seconds=2000.0 + i,
        )
    log.close()


def test_learn_weights_command_applies_only_winning_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signal, noise = tmp_path / "signal.db", tmp_path / "noise.db"
    record_decisions(signal, hidden_seed=5)
    record_decisions(noise, hidden_seed=None)
    out = tmp_path / "weights.toml"

    assert main(["learn-weights", "--db", str(signal), "--json", "--apply", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["beats_default"] and report["applied_to"] == str(out)
    weights = tomllib.loads(out.read_text())["placement"]["weights"]
    known = {f.factor_id for f in Policy.from_settings(PlacementSettings()).factors}
    assert weights and set(weights) <= known
    assert report["test_outcomes"] == 150

    out.unlink()
    assert main(["learn-weights", "--db", str(noise), "--apply", str(out)]) == 0
    text = capsys.readouterr().out
    assert "keeping the defaults" in text and "not written" in text
    assert not out.exists()


def test_learn_weights_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn-weights", "--db", str(tmp_path / "none.db")]) == 2
    assert "no such database" in capsys.readouterr().err
    record_decisions(tmp_path / "few.db", hidden_seed=None, count=10)
    assert main(["learn-weights", "--db", str(tmp_path / "few.db")]) == 1
    assert "usable outcomes" in capsys.readouterr().err


def test_learning_set_joins_outcomes_per_host(tmp_path: Path) -> None:
    record_decisions(tmp_path / "o.db", hidden_seed=None, count=3)
    log = OutcomeLog(tmp_path / "o.db")
    first = log.decision("r0")
    assert first is not None
    host = str(first.candidates[0]["host"])
    # a later failure on a host that had succeeded turns it into a failure, and an
    # outcome on a host the decision never returned is skipped
    log.record_outcome("r0", host, Outcome.PLACED, occurred_at_seconds=1, recorded_at_seconds=1)
    log.record_outcome("r0", host, Outcome.FAILED, occurred_at_seconds=2, recorded_at_seconds=2)
    log.record_outcome(
        "r1", "elsewhere", Outcome.FAILED, occurred_at_seconds=3, recorded_at_seconds=3
    )
    data = learning_set(log.joined(), first.factor_ids)
    log.close()
    assert data.skipped == 1
    assert data.factor_ids == first.factor_ids
    failed = [e for e in data.examples if e.decided_at_seconds == first.decided_at_seconds]
    assert any(not e.success for e in failed)
    for example in data.examples:
        assert example.alternatives.shape == (5, len(data.factor_ids))
