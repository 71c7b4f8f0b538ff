"""Model versions: one per artefact, ordered as the agent compares them (as strings)."""

from __future__ import annotations

import calendar
import time

from hypothesis import given
from hypothesis import strategies as st

from novacron.models.card import VERSION_FORMAT, new_version

# Whole seconds from 2000 to 2999: fixed-width years, as model versions will have.
SECONDS = st.integers(min_value=946_684_800, max_value=32_503_680_000 - 1)


def test_version_is_the_utc_second_it_was_made() -> None:
    assert new_version(1_795_454_111.9) == "2026.11.23.171511"
    assert new_version(1_795_392_000.0) == "2026.11.23.000000"  # midnight keeps its zeros
    before = time.time()
    stamped = calendar.timegm(time.strptime(new_version(), VERSION_FORMAT))
    assert int(before) <= stamped <= time.time()


@given(SECONDS, SECONDS)
def test_string_order_is_time_order(a: int, b: int) -> None:
    # The agent installs an update only if its version is greater than the loaded one's,
    # comparing strings; different seconds must never give the same version.
    va, vb = new_version(a), new_version(b)
    assert (va < vb) == (a < b) and (va == vb) == (a == b)
    assert calendar.timegm(time.strptime(va, VERSION_FORMAT)) == a
