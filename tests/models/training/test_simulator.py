"""The fleet simulator: deterministic, schema-complete, physically sensible traces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from novacron.models.schema import DAY, DISK, HOUR, NODE, VM
from novacron.models.training.simulator import (
    COLLECTOR_SIGNALS,
    DISK_UNAVAILABLE_EVENT,
    FAILURE_MODES,
    RESET_EVENTS,
    NodeTrace,
    SimConfig,
    iter_node_samples,
    iter_samples,
    simulate_fleet,
    simulate_node,
)

# Enough failing nodes for every mode, GPU nodes for the GPU mode, frequent driver reloads.
CONFIG = SimConfig(
    nodes=40,
    days=2.0,
    seed=3,
    failure_fraction=0.5,
    gpu_node_fraction=0.4,
    reset_rate_per_node_day=1.0,
)


@pytest.fixture(scope="module")
def fleet() -> list[NodeTrace]:
    return simulate_fleet(CONFIG)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


def test_same_seed_same_trace_and_node_alone_equals_fleet(fleet: list[NodeTrace]) -> None:
    again = simulate_node(CONFIG, 7)
    first = fleet[7]
    assert again.node_id == first.node_id
    assert again.events == first.events
    assert all(_same(again.signals[n], first.signals[n]) for n in NODE.signal_names)
    assert again.vms.keys() == first.vms.keys()
    for vm, signals in first.vms.items():
        assert all(_same(again.vms[vm][n], signals[n]) for n in VM.signal_names)
    for disk, signals in first.disks.items():
        assert all(_same(again.disks[disk][n], signals[n]) for n in DISK.signal_names)


def test_another_seed_gives_another_fleet(fleet: list[NodeTrace]) -> None:
    other = simulate_node(SimConfig(nodes=40, days=2.0, seed=4), 7)
    assert not _same(other.signals["cpu_util_percent"], fleet[7].signals["cpu_util_percent"])
    assert other.node_id != fleet[7].node_id


def test_every_schema_signal_present_with_the_trace_length(fleet: list[NodeTrace]) -> None:
    samples = CONFIG.samples
    assert samples == round(2 * DAY / 60)
    for trace in fleet:
        assert trace.times.shape == (samples,)
        assert np.all(np.diff(trace.times) == CONFIG.interval_seconds)
        assert set(trace.signals) == set(NODE.signal_names)
        assert all(v.shape == (samples,) for v in trace.signals.values())
        low, high = CONFIG.vms_per_node
        assert low <= len(trace.vms) <= high
        for signals in trace.vms.values():
            assert set(signals) == set(VM.signal_names)
            assert all(v.shape == (samples,) for v in signals.values())
        assert len(trace.disks) == CONFIG.disks_per_node
        for signals in trace.disks.values():
            assert set(signals) == set(DISK.signal_names)
            assert all(v.shape == (samples,) for v in signals.values())


def test_collector_map_covers_the_node_schema_exactly() -> None:
    mapped = [name for names in COLLECTOR_SIGNALS.values() for name in names]
    assert sorted(mapped) == sorted(NODE.signal_names)


def _drops(values: np.ndarray, times: np.ndarray) -> list[tuple[float, float]]:
    """(previous time, time) of every decrease between consecutive known values."""
    known = ~np.isnan(values)
    v, t = values[known], times[known]
    return [(float(t[k - 1]), float(t[k])) for k in np.flatnonzero(np.diff(v) < 0) + 1]


def test_counters_only_fall_at_an_explained_reset(fleet: list[NodeTrace]) -> None:
    counters = [s.name for s in NODE.signals if s.kind == "counter"]
    disk_counters = [s.name for s in DISK.signals if s.kind == "counter"]
    explained = {"reset": 0, "disk": 0}
    for trace in fleet:
        for name in counters:
            resets = [e.start for e in trace.events if name in RESET_EVENTS.get(e.kind, ())]
            vanished = [
                e.start
                for e in trace.events
                if e.kind == DISK_UNAVAILABLE_EVENT and name.startswith("smart_")
            ]
            for before, at in _drops(trace.signals[name], trace.times):
                by_reset = any(before < t <= at for t in resets)
                by_disk = any(before < t <= at for t in vanished)
                assert by_reset or by_disk, (trace.node_id, name, at)
                explained["reset" if by_reset else "disk"] += 1
        for serial, signals in trace.disks.items():
            for name in disk_counters:  # SMART raw counters live on the disk: never reset
                assert not _drops(signals[name], trace.times), (serial, name)
    # The fleet does exercise both: driver reloads and disks leaving the SMART sums.
    assert explained["reset"] > 0 and explained["disk"] > 0


def test_counters_are_whole_non_negative_numbers(fleet: list[NodeTrace]) -> None:
    for trace in fleet:
        for signal in NODE.signals:
            if signal.kind == "counter":
                values = trace.signals[signal.name]
                known = values[~np.isnan(values)]
                assert np.all(known >= 0) and np.all(known == np.round(known))


def _failed(fleet: list[NodeTrace]) -> list[NodeTrace]:
    return [t for t in fleet if t.failure_time is not None]


def test_failure_share_and_every_mode_present(fleet: list[NodeTrace]) -> None:
    failed = _failed(fleet)
    assert len(failed) == round(CONFIG.failure_fraction * CONFIG.nodes)
    assert {t.failure_mode for t in failed} == set(FAILURE_MODES)
    assert all(t.gpus > 0 for t in failed if t.failure_mode == "gpu")
    for trace in failed:
        assert trace.failure_time is not None
        assert trace.times[0] <= trace.failure_time < trace.times[-1] + CONFIG.interval_seconds
        kinds = [e.kind for e in trace.events if e.start == trace.failure_time]
        assert f"failure:{trace.failure_mode}" in kinds


def test_signals_stop_at_failure(fleet: list[NodeTrace]) -> None:
    for trace in _failed(fleet):
        assert trace.failure_time is not None
        failure = trace.failure_time
        dead = trace.times >= failure
        assert dead.any()
        for values in trace.signals.values():
            assert np.isnan(values[dead]).all()
        for group in (*trace.vms.values(), *trace.disks.values()):
            for values in group.values():
                assert np.isnan(values[dead]).all()
        last_hour = (trace.times < failure) & (trace.times >= failure - HOUR)
        if last_hour.any():  # alive until the end: there is data just before
            assert not np.isnan(trace.signals["cpu_util_percent"][last_hour]).all()


def _at(trace: NodeTrace, name: str, when: float) -> float:
    """Last known value of a node signal at or before ``when``."""
    known = (~np.isnan(trace.signals[name])) & (trace.times <= when)
    return float(trace.signals[name][known][-1]) if known.any() else math.nan


def _increase(trace: NodeTrace, name: str, start: float, end: float) -> float:
    """Counter growth over [start, end), counting resets as restarts (as the windows do)."""
    inside = (trace.times >= start) & (trace.times < end)
    values = trace.signals[name][inside]
    values = values[~np.isnan(values)]
    steps = np.diff(values)
    return float(np.sum(np.where(steps >= 0, steps, values[1:]))) if len(values) > 1 else 0.0


def test_precursors_precede_failures_and_show_in_the_signals(fleet: list[NodeTrace]) -> None:
    shown = 0
    for trace in _failed(fleet):
        assert trace.failure_time is not None
        failure = trace.failure_time
        precursors = [e for e in trace.events if e.kind == f"precursor:{trace.failure_mode}"]
        assert len(precursors) <= 1
        if not precursors:
            continue  # a sudden failure (no warning), as in the field
        event = precursors[0]
        assert event.start < failure and event.end == failure
        start = max(event.start, float(trace.times[0]))
        before = failure - 2 * 60
        mode = trace.failure_mode
        if mode == "disk":
            grew = sum(
                _increase(trace, name, start, failure)
                for name in ("smart_reallocated_sectors", "smart_uncorrectable_errors")
            )
            flagged = np.nanmax(trace.signals["smart_unavailable_disks"][trace.times < failure])
            assert grew > 0 or flagged >= 1
        elif mode == "dram":
            assert (
                _increase(trace, "ecc_corrected_errors", start, failure) > 0
                or _increase(trace, "ecc_uncorrected_errors", start, failure) > 0
            )
        elif mode == "fan":
            assert _at(trace, "fan_min_rpm", before) < 0.5 * _at(trace, "fan_min_rpm", start)
            assert _at(trace, "temp_margin_celsius", before) < 15
        elif mode == "thermal":
            assert _at(trace, "temp_margin_celsius", before) < 15
            assert _at(trace, "temp_max_celsius", before) > _at(trace, "temp_max_celsius", start)
        else:
            assert _increase(trace, "gpu_xid_events", start, failure) > 0
        shown += 1
    assert shown >= len(FAILURE_MODES)


def test_a_dead_disk_stops_answering(fleet: list[NodeTrace]) -> None:
    dead_disks = [(t, s, when) for t in fleet for s, when in t.disk_failure_times.items()]
    assert dead_disks
    for trace, serial, when in dead_disks:
        after = trace.times >= when
        assert np.isnan(trace.disks[serial]["reallocated_sectors"][after]).all()
        alive_after = after & ~np.isnan(trace.signals["smart_unavailable_disks"])
        assert np.all(trace.signals["smart_unavailable_disks"][alive_after] >= 1)
        assert when < (trace.failure_time or math.inf)


def test_confounders_and_anomalies_exist(fleet: list[NodeTrace]) -> None:
    kinds = {e.kind for t in fleet for e in t.events}
    for kind in (
        "confounder:hot_aisle",
        "confounder:benign_reallocation",
        "confounder:ecc_burst",
        "confounder:fan_sensor_glitch",
        "confounder:busy_node",
        "anomaly:noisy_neighbour",
        "anomaly:vm_network_flood",
        "reset:edac_reload",
    ):
        assert kind in kinds, kind
    assert any(k.startswith("missing:") for k in kinds)
    healthy = [t for t in fleet if t.failure_time is None]
    # Healthy nodes do show "precursor-like" signals: that is what the model must see through.
    assert any(_increase(t, "ecc_corrected_errors", t.times[0], t.times[-1]) > 0 for t in healthy)
    assert any(e.kind == "confounder:benign_reallocation" for t in healthy for e in t.events)


def test_noisy_neighbour_raises_its_vm_disk_io(fleet: list[NodeTrace]) -> None:
    checked = 0
    for trace in fleet:
        for event in trace.events:
            if event.kind != "anomaly:noisy_neighbour":
                continue
            ops = trace.vms[event.subject]["vm_disk_ops_per_second"]
            inside = (trace.times >= event.start) & (trace.times < event.end) & ~np.isnan(ops)
            outside = ~inside & ~np.isnan(ops)
            if inside.sum() > 5 and outside.sum() > 5:
                assert np.median(ops[inside]) > 5 * np.median(ops[outside])
                checked += 1
    assert checked


def test_missing_values_during_a_collector_outage(fleet: list[NodeTrace]) -> None:
    outages = [(t, e) for t in fleet for e in t.events if e.kind.startswith("missing:")]
    assert outages
    for trace, event in outages:
        collector = event.kind.split(":", 1)[1]
        inside = (trace.times >= event.start) & (trace.times < event.end)
        for name in COLLECTOR_SIGNALS[collector]:
            assert np.isnan(trace.signals[name][inside]).all()


def test_signal_ranges_are_realistic(fleet: list[NodeTrace]) -> None:
    healthy = [t for t in fleet if t.failure_time is None]
    temps = np.concatenate([t.signals["temp_max_celsius"] for t in healthy])
    fans = np.concatenate([t.signals["fan_min_rpm"] for t in healthy])
    cpu = np.concatenate([t.signals["cpu_util_percent"] for t in fleet])
    mem = np.concatenate([t.signals["mem_used_percent"] for t in fleet])
    assert np.nanpercentile(temps, 1) > 30 and np.nanpercentile(temps, 99) < 80
    assert np.nanpercentile(fans, 1) > 1500 and np.nanpercentile(fans, 99) < 7000
    assert np.nanmin(cpu) >= 0 and np.nanmax(cpu) <= 100
    assert np.nanmin(mem) >= 0 and np.nanmax(mem) <= 100
    margins = np.concatenate([t.signals["temp_margin_celsius"] for t in healthy])
    assert np.nanpercentile(margins, 50) > 25


def test_cpu_follows_a_daily_cycle(fleet: list[NodeTrace]) -> None:
    """Load one day apart is more alike than load half a day apart."""
    day, half = round(DAY / 60), round(DAY / 120)
    same, opposite = [], []
    for trace in fleet:
        cpu = trace.signals["cpu_util_percent"]
        a, b, c = cpu[:-day], cpu[day:], cpu[half : half + len(cpu) - day]
        ok = ~(np.isnan(a) | np.isnan(b) | np.isnan(c))
        if ok.sum() > 100 and np.std(a[ok]) > 0:
            same.append(np.corrcoef(a[ok], b[ok])[0, 1])
            opposite.append(np.corrcoef(a[ok], c[ok])[0, 1])
    assert np.nanmean(same) > np.nanmean(opposite) + 0.1


def test_iter_samples_replays_in_schema_names_with_none_for_missing(
    fleet: list[NodeTrace],
) -> None:
    trace = next(t for t in fleet if t.failure_time is not None)
    samples = list(iter_samples(trace))
    assert len(samples) == CONFIG.samples
    t, node, vms, disks = samples[0]
    assert t == trace.times[0]
    assert tuple(node) == NODE.signal_names
    assert vms.keys() == trace.vms.keys() and disks.keys() == trace.disks.keys()
    assert all(tuple(v) == VM.signal_names for v in vms.values())
    assert all(tuple(d) == DISK.signal_names for d in disks.values())
    last = samples[-1][1]
    assert all(v is None for v in last.values())  # the node is dead by then
    node_only = list(iter_node_samples(trace))
    assert [s[0] for s in node_only] == [s[0] for s in samples]
    assert node_only[10][1] == samples[10][1]
    k = next(i for i, s in enumerate(samples) if s[1]["cpu_util_percent"] is not None)
    assert samples[k][1]["cpu_util_percent"] == pytest.approx(
        float(trace.signals["cpu_util_percent"][k])
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nodes", 0),
        ("days", 0.0),
        ("failure_fraction", 1.5),
        ("vms_per_node", (5, 2)),
        ("gpu_node_fraction", -0.1),
        ("interval_seconds", 0.5),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        SimConfig(**{field: value})  # type: ignore[arg-type]


def test_no_gpus_anywhere_when_gpus_per_node_is_zero() -> None:
    traces = simulate_fleet(SimConfig(nodes=6, days=0.2, gpus_per_node=0, gpu_node_fraction=1.0))
    for trace in traces:
        assert trace.gpus == 0
        assert np.isnan(trace.signals["gpu_xid_events"]).all()
