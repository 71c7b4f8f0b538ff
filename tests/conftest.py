"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest


@pytest.fixture(autouse=True)
def _psutil_reads_the_real_proc() -> Iterator[None]:
    """Every test starts with psutil reading the real ``/proc``.

    Collectors point psutil's module-global ``PROCFS_PATH`` at their configured procfs
    root (see ``agent/collectors/_procfs.py``). A test that runs them in-process against
    a fixture tree would otherwise leave the next test in the same worker asking a
    fixture ``/proc`` about real processes (``psutil.Process(pid)`` then finds nothing).
    """
    psutil.PROCFS_PATH = "/proc"
    yield
    psutil.PROCFS_PATH = "/proc"
