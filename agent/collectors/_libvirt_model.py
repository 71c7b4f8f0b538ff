"""The libvirt collector's readings: typed, immutable, with units in the field names.

Counters are cumulative since the domain (or device) started; each has a ``*_per_second``
twin computed from the previous collection (``None`` on the first sample and after a
counter reset, e.g. a guest reboot). Every value that a driver did not report, or that a
shut-off domain cannot have, is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from novacron.agent.collectors.base import UnavailableDevice


@dataclass(frozen=True)
class InterfaceCounters:
    rx_bytes: int | None = None
    rx_packets: int | None = None
    rx_errors: int | None = None
    rx_drops: int | None = None
    tx_bytes: int | None = None
    tx_packets: int | None = None
    tx_errors: int | None = None
    tx_drops: int | None = None


@dataclass(frozen=True)
class InterfaceRates:
    rx_bytes_per_second: float | None = None
    rx_packets_per_second: float | None = None
    rx_errors_per_second: float | None = None
    rx_drops_per_second: float | None = None
    tx_bytes_per_second: float | None = None
    tx_packets_per_second: float | None = None
    tx_errors_per_second: float | None = None
    tx_drops_per_second: float | None = None


@dataclass(frozen=True)
class InterfaceStats:
    name: str  # host-side device (``vnet3``), as in the live domain XML's <target dev>
    counters: InterfaceCounters
    rates: InterfaceRates = InterfaceRates()


@dataclass(frozen=True)
class DiskCounters:
    read_requests: int | None = None
    read_bytes: int | None = None
    write_requests: int | None = None
    write_bytes: int | None = None
    flush_requests: int | None = None
    read_time_seconds: float | None = None
    write_time_seconds: float | None = None
    flush_time_seconds: float | None = None


@dataclass(frozen=True)
class DiskRates:
    read_requests_per_second: float | None = None
    read_bytes_per_second: float | None = None
    write_requests_per_second: float | None = None
    write_bytes_per_second: float | None = None
    flush_requests_per_second: float | None = None
    # Seconds spent per second: > 1 means several requests were in flight at once.
    read_time_seconds_per_second: float | None = None
    write_time_seconds_per_second: float | None = None
    flush_time_seconds_per_second: float | None = None


@dataclass(frozen=True)
class DiskStats:
    name: str  # guest-side target (``vda``), as in the domain XML's <target dev>
    counters: DiskCounters
    rates: DiskRates = DiskRates()


@dataclass(frozen=True)
class DomainStats:
    """One domain (VM) at one moment."""

    name: str
    uuid: str
    state: str  # running, blocked, paused, shutdown, shutoff, crashed, pmsuspended, nostate
    state_reason: str  # e.g. booted, user, migration, ioerror, destroyed; "unknown"
    vcpu_count: int | None = None
    vcpu_times_seconds: tuple[float, ...] = ()  # per vCPU, in vCPU order
    cpu_time_seconds: float | None = None  # guest total, user + system + steal...
    cpu_user_seconds: float | None = None
    cpu_system_seconds: float | None = None
    balloon_current_bytes: int | None = None  # memory the guest has now (balloon.current)
    balloon_maximum_bytes: int | None = None  # memory it may balloon up to
    memory_rss_bytes: int | None = None  # host memory the QEMU process holds
    guest_memory_usable_bytes: int | None = None  # guest's own view, via the balloon driver
    guest_memory_unused_bytes: int | None = None
    guest_memory_available_bytes: int | None = None
    interfaces: tuple[InterfaceStats, ...] = ()
    disks: tuple[DiskStats, ...] = ()


@dataclass(frozen=True)
class DomainStateCounts:
    """How many domains are in each state; ``unknown`` for ones whose state never came."""

    running: int = 0
    blocked: int = 0
    paused: int = 0
    shutdown: int = 0
    shutoff: int = 0
    crashed: int = 0
    pmsuspended: int = 0
    nostate: int = 0
    unknown: int = 0
    total: int = 0


@dataclass(frozen=True)
class LibvirtReadings:
    uri: str
    connected: bool
    error: str | None  # why there is no data (libvirtd unreachable, connection lost)
    domain_counts: DomainStateCounts | None  # None when not connected
    domains: tuple[DomainStats, ...]
    unavailable: tuple[UnavailableDevice, ...]  # device = domain name


# libvirt's virDomainState and per-state reason enums (stable ABI numbers).
STATE_NAMES: dict[int, str] = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}

STATE_REASONS: dict[str, tuple[str, ...]] = {
    "nostate": ("unknown",),
    "running": (
        "unknown",
        "booted",
        "migrated",
        "restored",
        "from_snapshot",
        "unpaused",
        "migration_canceled",
        "save_canceled",
        "wakeup",
        "crashed",
        "postcopy",
        "postcopy_failed",
    ),
    "blocked": ("unknown",),
    "paused": (
        "unknown",
        "user",
        "migration",
        "save",
        "dump",
        "ioerror",
        "watchdog",
        "from_snapshot",
        "shutting_down",
        "snapshot",
        "crashed",
        "starting_up",
        "postcopy",
        "postcopy_failed",
    ),
    "shutdown": ("unknown", "user"),
    "shutoff": (
        "unknown",
        "shutdown",
        "destroyed",
        "crashed",
        "migrated",
        "saved",
        "failed",
        "from_snapshot",
        "daemon",
    ),
    "crashed": ("unknown", "panicked"),
    "pmsuspended": ("unknown",),
}

# States in which a domain has a running QEMU process, hence runtime statistics.
ACTIVE_STATES = frozenset({"running", "blocked", "paused", "shutdown", "pmsuspended"})
