"""Run the real collectors in-process on a whole fixture node for a few cycles.

Shared by the feature and scoring tests: every source is the fixture's (sysfs, procfs
advancing one tick per cycle, fake smartctl with real recordings, libvirt's test driver,
a fake pynvml put in ``sys.modules`` for the duration).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from novacron.agent.config import load_config, with_overrides
from novacron.agent.runner import CollectionRunner
from novacron.agent.sample import NodeSample
from tests.fixtures.node import build_fixture_node
from tests.fixtures.nvml import load_fake_pynvml
from tests.fixtures.procfs import TICK_SECONDS, write_procfs_tree

# cpuinfo runs py-cpuinfo (about a second) and adds no signal the others lack.
COLLECTORS = ["host", "hwmon", "edac", "smart", "nvml", "libvirt"]


def collect_cycles(
    root: Path,
    *,
    cycles: int = 2,
    domains: int = 5,
    disks: int = 6,
    failing_disks: int = 1,
    gpus: int = 2,
) -> list[NodeSample]:
    """``cycles`` samples of a fixture node; procfs advances one tick between them.

    The samples are stamped one procfs tick (10 s) apart, as a running agent's would be,
    although they are collected back to back.
    """
    node = build_fixture_node(
        root, domains=domains, disks=disks, failing_disks=failing_disks, gpus=gpus
    )
    assert node.procfs_root is not None
    config = with_overrides(
        load_config(node.config),
        sysfs_root=node.sysfs_root,
        procfs_root=node.procfs_root,
        only_collectors=COLLECTORS,
        collector_settings={
            "smart": {"smartctl_path": str(node.smartctl)},
            "libvirt": {"uri": node.libvirt_uri},
        },
    )
    samples = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "pynvml", load_fake_pynvml(gpus=gpus, xid=31))
        runner = CollectionRunner(config)
        try:
            for tick in range(cycles):
                write_procfs_tree(node.procfs_root, tick=tick)
                samples.append(runner.collect())
        finally:
            runner.close()
    start = samples[0].timestamp_seconds
    return [
        replace(sample, timestamp_seconds=start + TICK_SECONDS * k)
        for k, sample in enumerate(samples)
    ]
