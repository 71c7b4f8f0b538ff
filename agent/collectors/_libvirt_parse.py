"""Pure parsing for the libvirt collector: stats dictionaries and domain XML in, records out.

Everything here works on plain values, so it is tested without a hypervisor. The input
is the flat dictionary that ``virConnect.getAllDomainStats()`` returns per domain
(``state.state``, ``cpu.time``, ``net.0.rx.bytes`` ...); the per-domain fallback in
:mod:`._libvirt_fetch` builds the same keys from the older per-domain calls, so one
parser serves both paths.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from novacron.agent.collectors._libvirt_model import (
    STATE_NAMES,
    STATE_REASONS,
    DiskCounters,
    DiskRates,
    DiskStats,
    DomainStateCounts,
    DomainStats,
    InterfaceCounters,
    InterfaceRates,
    InterfaceStats,
)
from novacron.agent.collectors._rates import rates_between
from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger("novacron.agent.collectors.libvirt")
_log_once = LogOnce(log)

KIB = 1024
NS_PER_SECOND = 1e9

# Stats groups as getAllDomainStats names its keys; a group whose prefix is missing for
# an active domain was not returned by the driver and must be fetched per domain.
GROUP_PREFIXES = {
    "state": "state.",
    "cpu-total": "cpu.",
    "balloon": "balloon.",
    "vcpu": "vcpu.",
    "interface": "net.",
    "block": "block.",
}

# (field, stats key suffix) for one interface, as getAllDomainStats names them.
_INTERFACE_KEYS = (
    ("rx_bytes", "rx.bytes"),
    ("rx_packets", "rx.pkts"),
    ("rx_errors", "rx.errs"),
    ("rx_drops", "rx.drop"),
    ("tx_bytes", "tx.bytes"),
    ("tx_packets", "tx.pkts"),
    ("tx_errors", "tx.errs"),
    ("tx_drops", "tx.drop"),
)
_VCPU_TIME = re.compile(r"vcpu\.(\d+)\.time")


@dataclass(frozen=True)
class DomainDevices:
    """Device names the per-domain stats calls take, from the live domain XML."""

    disks: tuple[str, ...]
    interfaces: tuple[str, ...]


def missing_groups(stats: Mapping[str, object]) -> set[str]:
    """Stats groups with no key at all in ``stats`` (the driver did not return them)."""
    return {
        group
        for group, prefix in GROUP_PREFIXES.items()
        if not any(key.startswith(prefix) for key in stats)
    }


def as_int(value: object) -> int | None:
    """``value`` if it is an integer (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stats_state(stats: Mapping[str, object]) -> str:
    """The state name in a flat stats dictionary (``unknown`` without ``state.state``)."""
    return state_name(as_int(stats.get("state.state")))


def state_name(state: int | None) -> str:
    if state is None:
        return "unknown"
    return STATE_NAMES.get(state, f"state_{state}")


def reason_name(state: str, reason: int | None) -> str:
    reasons = STATE_REASONS.get(state, ())
    if reason is None:
        return "unknown"
    return reasons[reason] if 0 <= reason < len(reasons) else f"reason_{reason}"


def parse_domain_stats(name: str, uuid: str, stats: Mapping[str, object]) -> DomainStats:
    """Turn one domain's flat stats dictionary into a :class:`DomainStats` (rates unset).

    A key that is absent gives ``None``; one whose value is not a number is logged once
    and gives ``None`` too, so one odd value never costs the rest of the domain.
    """
    values = _Values(name, stats)
    state = state_name(values.integer("state.state"))
    vcpu_times = sorted(
        (int(match.group(1)), values.seconds(key))
        for key in stats
        if (match := _VCPU_TIME.fullmatch(key))
    )
    return DomainStats(
        name=name,
        uuid=uuid,
        state=state,
        state_reason=reason_name(state, values.integer("state.reason")),
        vcpu_count=values.integer("vcpu.current"),
        vcpu_times_seconds=tuple(t for _, t in vcpu_times if t is not None),
        cpu_time_seconds=values.seconds("cpu.time"),
        cpu_user_seconds=values.seconds("cpu.user"),
        cpu_system_seconds=values.seconds("cpu.system"),
        balloon_current_bytes=values.kib("balloon.current"),
        balloon_maximum_bytes=values.kib("balloon.maximum"),
        memory_rss_bytes=values.kib("balloon.rss"),
        guest_memory_usable_bytes=values.kib("balloon.usable"),
        guest_memory_unused_bytes=values.kib("balloon.unused"),
        guest_memory_available_bytes=values.kib("balloon.available"),
        interfaces=tuple(_interfaces(values)),
        disks=tuple(_disks(values)),
    )


def _interfaces(values: _Values) -> Iterable[InterfaceStats]:
    for prefix, device in values.devices("net"):
        counters = InterfaceCounters(
            **{field: values.integer(f"{prefix}.{key}") for field, key in _INTERFACE_KEYS}
        )
        yield InterfaceStats(name=device, counters=counters)


def _disks(values: _Values) -> Iterable[DiskStats]:
    for prefix, device in values.devices("block"):
        counters = DiskCounters(
            read_requests=values.integer(f"{prefix}.rd.reqs"),
            read_bytes=values.integer(f"{prefix}.rd.bytes"),
            write_requests=values.integer(f"{prefix}.wr.reqs"),
            write_bytes=values.integer(f"{prefix}.wr.bytes"),
            flush_requests=values.integer(f"{prefix}.fl.reqs"),
            read_time_seconds=values.seconds(f"{prefix}.rd.times"),
            write_time_seconds=values.seconds(f"{prefix}.wr.times"),
            flush_time_seconds=values.seconds(f"{prefix}.fl.times"),
        )
        yield DiskStats(name=device, counters=counters)


class _Values:
    """Typed access to one domain's stats dictionary, logging odd values once."""

    def __init__(self, domain: str, stats: Mapping[str, object]) -> None:
        self._domain = domain
        self._stats = stats

    def integer(self, key: str) -> int | None:
        value = self._stats.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            _log_once.problem(
                f"{self._domain}:{key}",
                logging.WARNING,
                "libvirt stats value is not a number; field skipped",
                domain=self._domain,
                stats_key=key,
                value=repr(value)[:80],
            )
            return None
        # QEMU reports -1 for "not supported" in a few per-device counters.
        return int(value) if value >= 0 else None

    def seconds(self, key: str) -> float | None:
        value = self.integer(key)
        return None if value is None else value / NS_PER_SECOND

    def kib(self, key: str) -> int | None:
        value = self.integer(key)
        return None if value is None else value * KIB

    def devices(self, group: str) -> Iterable[tuple[str, str]]:
        """``(key prefix, device name)`` for ``net.<n>`` / ``block.<n>`` entries."""
        count = self.integer(f"{group}.count") or 0
        seen: set[str] = set()
        for index in range(count):
            name = self._stats.get(f"{group}.{index}.name")
            if not isinstance(name, str) or not name or name in seen:
                continue  # a backing-chain entry repeats its disk's name
            seen.add(name)
            yield f"{group}.{index}", name


def parse_domain_devices(domain_xml: str) -> DomainDevices:
    """Disk targets and interface devices of a live domain, for blockStats/interfaceStats.

    Interfaces without a host-side ``<target dev>`` (a shut-off domain's) are left out;
    raises ``ValueError`` for XML that does not parse.
    """
    try:
        root = ET.fromstring(domain_xml)  # noqa: S314 - trusted: libvirt's own output
    except ET.ParseError as exc:
        raise ValueError(f"domain XML does not parse: {exc}") from None
    disks = _target_devs(root.iterfind("./devices/disk"))
    interfaces = _target_devs(root.iterfind("./devices/interface"))
    return DomainDevices(disks=disks, interfaces=interfaces)


def _target_devs(elements: Iterable[ET.Element]) -> tuple[str, ...]:
    names: list[str] = []
    for element in elements:
        target = element.find("target")
        dev = target.get("dev") if target is not None else None
        if dev and dev not in names:
            names.append(dev)
    return tuple(names)


def count_states(states: Iterable[str]) -> DomainStateCounts:
    """Domains per state; a state outside libvirt's enum counts as ``unknown``."""
    counts = dict.fromkeys(STATE_NAMES.values(), 0)
    unknown = 0
    total = 0
    for state in states:
        total += 1
        if state in counts:
            counts[state] += 1
        else:
            unknown += 1
    return DomainStateCounts(**counts, unknown=unknown, total=total)


def add_rates(
    current: DomainStats, previous: DomainStats | None, elapsed_seconds: float
) -> DomainStats:
    """``current`` with per-device rates against ``previous`` (same domain, earlier).

    Devices are matched by name; a device new since ``previous`` (hot-plugged) and the
    first sample of a domain get ``None`` rates, as does a counter that went down.
    """
    old_interfaces = {i.name: i.counters for i in previous.interfaces} if previous else {}
    old_disks = {d.name: d.counters for d in previous.disks} if previous else {}
    interfaces = tuple(
        replace(
            i,
            rates=rates_between(
                old_interfaces.get(i.name), i.counters, elapsed_seconds, InterfaceRates
            ),
        )
        for i in current.interfaces
    )
    disks = tuple(
        replace(
            d, rates=rates_between(old_disks.get(d.name), d.counters, elapsed_seconds, DiskRates)
        )
        for d in current.disks
    )
    return replace(current, interfaces=interfaces, disks=disks)
