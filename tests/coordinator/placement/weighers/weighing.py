"""Run one weigher on a small table and compare its raw values with a table of expectations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.weighers.base import Weigher


def weigh(
    weigher: type[Weigher],
    hosts: HostTable,
    request: PlacementRequest,
    settings: PlacementSettings | None = None,
) -> dict[str, FloatArray]:
    """The weigher's raw values, after checking the contract: exactly its factors, one
    float64 value per host."""
    values = dict(weigher(settings or PlacementSettings()).raw(hosts, request))
    assert set(values) == {factor.factor_id for factor in weigher.factors}
    for factor_id, column in values.items():
        assert column.shape == (len(hosts),), factor_id
        assert column.dtype == np.float64, factor_id
    return values


def assert_raw(values: Mapping[str, FloatArray], expected: Mapping[str, Sequence[float]]) -> None:
    """Each listed factor's raw values equal ``expected`` (NaN matches NaN)."""
    for factor_id, want in expected.items():
        assert values[factor_id].tolist() == pytest.approx(list(want), nan_ok=True), factor_id
