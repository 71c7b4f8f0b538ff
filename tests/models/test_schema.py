"""The feature schema: unique names, known signals, hashes that move with any change."""

from __future__ import annotations

import dataclasses

import pytest

from novacron.models.schema import (
    DISK,
    NODE,
    SCHEMAS,
    VM,
    Schema,
    SchemaMismatch,
    schema_for,
)


@pytest.mark.parametrize("schema", list(SCHEMAS.values()), ids=list(SCHEMAS))
def test_every_feature_has_a_unit_window_and_known_signal(schema: Schema) -> None:
    signals = set(schema.signal_names)
    for feature in schema.features:
        assert feature.signal in signals
        assert feature.window_seconds > 0
        assert feature.unit


@pytest.mark.parametrize("schema", list(SCHEMAS.values()), ids=list(SCHEMAS))
def test_changes_read_as_steady_when_there_is_no_data(schema: Schema) -> None:
    """A trend or increase without samples is "no change", not the level's fill."""
    for feature in schema.features:
        if feature.aggregation in ("trend", "increase", "rate_per_hour", "std"):
            assert feature.fill == 0.0, feature.name


def test_temperature_trend_is_not_filled_with_a_temperature() -> None:
    by_name = {f.name: f for f in NODE.features}
    assert by_name["temp_max_celsius_last_15m"].fill == 40.0
    assert by_name["temp_max_celsius_trend_30m"].fill == 0.0


def test_hash_changes_with_any_feature_change() -> None:
    changed = dataclasses.replace(NODE.features[0], window_seconds=600.0)
    other = Schema(NODE.name, NODE.version, NODE.signals, (changed, *NODE.features[1:]))
    assert other.hash != NODE.hash
    assert Schema(NODE.name, NODE.version, NODE.signals, NODE.features).hash == NODE.hash


def test_check_and_lookup_refuse_other_schemas() -> None:
    NODE.check(NODE.version_tag, NODE.hash)
    with pytest.raises(SchemaMismatch, match="feature schema mismatch"):
        NODE.check(NODE.version_tag, VM.hash)
    assert schema_for("disk-v1") is DISK
    with pytest.raises(SchemaMismatch, match="unknown feature schema"):
        schema_for("node-v99")


def test_duplicate_or_dangling_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate feature"):
        Schema("x", 1, NODE.signals, (NODE.features[0], NODE.features[0]))
    bad = dataclasses.replace(NODE.features[0], signal="nope")
    with pytest.raises(ValueError, match="unknown signal"):
        Schema("x", 1, NODE.signals, (bad,))
