"""The in-memory fleet snapshot: liveness with an injected clock, immutability, loading."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from novacron.coordinator.config import CoordinatorSettings
from novacron.coordinator.fleet import FleetState, Liveness, liveness
from novacron.coordinator.store_sqlite import SqliteStore
from novacron.models.schema import NODE
from tests.coordinator.frames import stored, stored_range


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fleet(clock: Clock) -> FleetState:
    return FleetState.from_settings(
        CoordinatorSettings(stale_after_seconds=60.0, unknown_after_seconds=600.0), clock=clock
    )


def test_liveness_boundaries() -> None:
    def at(silent: float | None) -> Liveness:
        last = None if silent is None else 1000.0 - silent
        return liveness(last, 1000.0, stale_after_seconds=60.0, unknown_after_seconds=600.0)

    assert [at(0), at(60), at(60.5), at(600), at(600.5), at(None)] == [
        Liveness.LIVE,
        Liveness.LIVE,
        Liveness.STALE,
        Liveness.STALE,
        Liveness.UNKNOWN,
        Liveness.UNKNOWN,
    ]
    assert Liveness.STALE.label == "stale"


def test_liveness_transitions_follow_the_clock(fleet: FleetState, clock: Clock) -> None:
    fleet.observe(stored("a", 1))
    fleet.observe(stored("b", 1))
    statuses = []
    for now in (1000.0, 1061.0, 1300.0, 1601.0):
        clock.now = now
        if now == 1300.0:
            fleet.observe(stored("b", 2))  # b speaks again at 1300
        snap = fleet.snapshot()
        statuses.append([Liveness(code) for code in snap.status])
    assert statuses == [
        [Liveness.LIVE, Liveness.LIVE],
        [Liveness.STALE, Liveness.STALE],
        [Liveness.STALE, Liveness.LIVE],
        [Liveness.UNKNOWN, Liveness.STALE],
    ]
    snap = fleet.snapshot(now=1301.0)
    assert snap.taken_at_seconds == 1301.0
    assert list(snap.mask(Liveness.LIVE)) == [False, True]


def test_snapshot_holds_the_latest_frame_per_node(fleet: FleetState) -> None:
    fleet.observe(stored("a", 1, probability=0.1, anomaly_score=0.2), received_at_seconds=990.0)
    fleet.observe(stored("a", 2, probability=0.3, anomaly_score=0.4), received_at_seconds=995.0)
    fleet.observe(stored("b", 5), received_at_seconds=999.0)
    snap = fleet.snapshot()
    assert list(snap.node_ids) == ["a", "b"]
    assert len(snap) == 2 and snap.row("b") == 1
    assert snap.feature_names == NODE.feature_names
    assert snap.features.shape == (2, len(NODE.features))
    assert snap.features.dtype == np.float32
    assert snap.features[0, 0] == pytest.approx(2.0)
    assert math.isnan(snap.features[0, 6])
    assert list(snap.last_seq) == [2, 5]
    assert list(snap.last_seen_seconds) == [995.0, 999.0]
    assert snap.failure_probability[0] == pytest.approx(0.3)
    assert snap.anomaly_score[0] == pytest.approx(0.4)


def test_replayed_older_frame_refreshes_liveness_only(fleet: FleetState) -> None:
    fleet.observe(stored("a", 10, probability=0.5), received_at_seconds=100.0)
    fleet.observe(stored("a", 3, probability=0.9), received_at_seconds=200.0)
    snap = fleet.snapshot(now=200.0)
    assert snap.last_seq[0] == 10
    assert snap.features[0, 0] == pytest.approx(10.0)
    assert snap.failure_probability[0] == pytest.approx(0.5)
    assert snap.last_seen_seconds[0] == 200.0


def test_snapshots_are_immutable_and_independent(fleet: FleetState) -> None:
    fleet.observe(stored("a", 1))
    first = fleet.snapshot()
    for array in (first.node_ids, first.status, first.features, first.failure_probability):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
    with pytest.raises(TypeError):
        first.index["x"] = 3  # type: ignore[index]
    fleet.observe(stored("a", 2))
    fleet.observe(stored("b", 1))
    second = fleet.snapshot()
    assert first.features[0, 0] == pytest.approx(1.0)
    assert len(first) == 1
    assert second.features[0, 0] == pytest.approx(2.0)
    assert len(second) == 2


def test_unchanged_fleet_reuses_the_copy_but_not_the_status(
    fleet: FleetState, clock: Clock
) -> None:
    fleet.observe(stored("a", 1))
    first = fleet.snapshot()
    clock.now += 120.0
    second = fleet.snapshot()
    assert second.features is first.features
    assert Liveness(second.status[0]) is Liveness.STALE
    assert Liveness(first.status[0]) is Liveness.LIVE


def test_capacity_grows_without_losing_rows(clock: Clock) -> None:
    fleet = FleetState(clock=clock, initial_capacity=2)
    for i in range(100):
        fleet.observe(stored(f"n{i:03d}", i + 1, vms=0))
    snap = fleet.snapshot()
    assert len(fleet) == len(snap) == 100
    assert list(snap.last_seq) == list(range(1, 101))
    np.testing.assert_allclose(snap.features[:, 0], np.arange(1, 101, dtype=np.float32))


def test_frames_of_another_schema_show_no_data_and_log_once(
    fleet: FleetState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="novacron.coordinator.fleet")
    fleet.observe(stored("odd", 1, features=[1.0, 2.0, 3.0]))
    fleet.observe(stored("odd", 2, features=[1.0, 2.0, 3.0]))
    fleet.observe(stored("v2", 1, schema_version=2))
    snap = fleet.snapshot()
    assert np.isnan(snap.features).all()
    assert list(snap.last_seq) == [2, 1]  # still known, still live
    messages = [r for r in caplog.records if "feature schema" in r.getMessage()]
    assert len(messages) == 2
    assert messages[0].node_id == "odd"  # type: ignore[attr-defined]
    assert messages[0].feature_count == 3  # type: ignore[attr-defined]


def test_load_rebuilds_the_fleet_from_the_store(tmp_path: Path, clock: Clock) -> None:
    store = SqliteStore.open(tmp_path / "c.db")
    try:
        store.write_batch(stored_range("a", 1, 4), now=950.0)
        store.write_batch([stored("b", 9, probability=0.7)], now=500.0)
        fleet = FleetState(clock=clock)
        assert fleet.load(store) == 2
    finally:
        store.close()
    snap = fleet.snapshot()
    assert list(snap.node_ids) == ["a", "b"]
    assert list(snap.last_seq) == [4, 9]
    assert list(snap.last_seen_seconds) == [950.0, 500.0]
    assert snap.features[0, 1] == pytest.approx(4.01)
    assert snap.failure_probability[1] == pytest.approx(0.7)
    assert [Liveness(s) for s in snap.status] == [Liveness.LIVE, Liveness.STALE]
