"""What the scheduler asks for, as a plain typed record (the proto ``VmSpec`` mirrored).

The engine and the what-if simulator work on :class:`PlacementRequest`, never on
protobuf messages, so they run without gRPC and are easy to build in tests.
Conversion from and to the wire lives in :mod:`.convert`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType


class NumaPolicy(Enum):
    NONE = "none"  # no NUMA constraint
    PREFERRED = "preferred"  # hosts where the VM fits in numa_nodes host nodes score higher
    STRICT = "strict"  # each guest NUMA node must fit inside one host NUMA node


class GroupPolicy(Enum):
    AFFINITY = "affinity"  # members on the same host
    ANTI_AFFINITY = "anti-affinity"  # members on different hosts


@dataclass(frozen=True)
class ServerGroup:
    """The Nova-style server group a VM belongs to."""

    group_id: str
    policy: GroupPolicy
    hard: bool = True  # True: a filter removes violating hosts; False: a weigher penalises
    member_hosts: tuple[str, ...] = ()  # hosts already running members (repeats = count)
    max_members_per_host: int = 1  # soft anti-affinity: members per host before the penalty


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class PlacementRequest:
    """One VM to place. Resource units are fixed: MiB, GiB, whole vCPUs and GPUs."""

    vcpus: int
    memory_mib: int
    disk_gib: int = 0
    gpus: int = 0
    gpu_model: str = ""  # "" = any
    cpu_flags: tuple[str, ...] = ()
    numa_policy: NumaPolicy = NumaPolicy.NONE
    numa_nodes: int = 1
    image_arch: str = ""  # "" = any
    server_group: ServerGroup | None = None
    zone: str = ""  # "" = any
    aggregates: tuple[str, ...] = ()
    required_labels: Mapping[str, str] = field(default_factory=dict)
    compliance: tuple[str, ...] = ()
    current_host: str = ""  # migration source, excluded from the results
    ignore_hosts: tuple[str, ...] = ()
    vm_uuid: str = ""
    flavor: str = ""

    def __post_init__(self) -> None:
        if self.vcpus < 1:
            raise ValueError(f"vcpus must be >= 1, got {self.vcpus}")
        if self.memory_mib < 1:
            raise ValueError(f"memory_mib must be >= 1, got {self.memory_mib}")
        for name in ("disk_gib", "gpus"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.numa_nodes < 1:
            raise ValueError(f"numa_nodes must be >= 1, got {self.numa_nodes}")
        object.__setattr__(self, "required_labels", _frozen_map(self.required_labels))

    @property
    def excluded_hosts(self) -> frozenset[str]:
        """Hosts that must not be returned: the migration source and ignored hosts."""
        hosts = set(self.ignore_hosts)
        if self.current_host:
            hosts.add(self.current_host)
        return frozenset(hosts)
