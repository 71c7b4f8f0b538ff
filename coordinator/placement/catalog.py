"""The factor catalogue: every factor of the enabled weighers, checked.

``ListFactors``, ``docs/placement-factors.md`` (:mod:`.catalog_doc`) and tests read the
catalogue from here. Each weigher declares its factors next to the code that computes
them; the catalogue is what :class:`.engine.Policy` assembles from the enabled weighers
(which also rejects unknown weigher names, a factor id owned by two weighers and weights
naming no factor), plus the rules only the catalogue cares about: every objective is one
a request can weigh, every default weight finite and not negative.

Default weights are dimensionless and read against each other within an objective:
``1.0`` is a full-strength preference (free vCPUs, free memory, I/O latency), ``0.25``
to ``0.5`` a tie-breaker, ``1.5`` to ``3.0`` a factor that should override several
others (failure probability, failing disks, uncorrectable errors, the user's soft group
wishes). The request's objective weights scale whole objectives on top of that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from novacron.coordinator.placement.engine import Policy
from novacron.coordinator.placement.factors import Factor
from novacron.coordinator.placement.settings import PlacementSettings

# What a factor may serve; "pack" is not one of them: it is "spread" with the sign inverted.
FACTOR_OBJECTIVES = ("spread", "reliability", "performance", "energy")


def check_factors(factors: Iterable[Factor]) -> None:
    """Raise ValueError for a factor no objective weight could reach or a bad default."""
    for factor in factors:
        if factor.objective not in FACTOR_OBJECTIVES:
            raise ValueError(
                f"factor {factor.factor_id!r}: unknown objective {factor.objective!r} "
                f"(known: {', '.join(FACTOR_OBJECTIVES)})"
            )
        if not math.isfinite(factor.default_weight) or factor.default_weight < 0:
            raise ValueError(
                f"factor {factor.factor_id!r}: default weight must be finite and >= 0, "
                f"got {factor.default_weight!r}"
            )


def catalog(settings: PlacementSettings | None = None) -> tuple[Factor, ...]:
    """Every factor of the weighers ``settings`` enables (all by default), in pipeline
    order; ValueError for a duplicate id, an unknown objective or a bad default weight."""
    factors = Policy.from_settings(settings or PlacementSettings()).factors
    check_factors(factors)
    return factors
