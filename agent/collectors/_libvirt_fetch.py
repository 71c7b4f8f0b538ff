"""Per-domain fallback: fill in the stats groups that ``getAllDomainStats`` left out.

Older drivers (and the test driver of libvirt 9.0) return only some groups from the bulk
call, and a stuck domain can make the bulk call fail. The per-domain calls
(``info``, ``getCPUStats``, ``memoryStats``, ``vcpus``, ``blockStats``,
``interfaceStats``) give the same numbers; this module turns their answers into the
bulk call's flat keys, so :func:`._libvirt_parse.parse_domain_stats` reads both.

Each group is fetched independently: a call the driver does not support, or a device
that cannot answer (an empty CD-ROM), costs only its own keys. Only a lost connection
and a domain that vanished propagate, because the caller must act on them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from novacron.agent.collectors._libvirt_model import ACTIVE_STATES
from novacron.agent.collectors._libvirt_parse import (
    log,
    missing_groups,
    parse_domain_devices,
    stats_state,
)
from novacron.protos.runtime.jsonlog import LogOnce

_log_once = LogOnce(log)

# virErrorNumber / virErrorDomain values (stable ABI), so this module needs no libvirt.
VIR_ERR_NO_CONNECT = 5
VIR_ERR_INVALID_CONN = 6
VIR_ERR_NO_DOMAIN = 42
VIR_FROM_RPC = 7
VIR_FROM_REMOTE = 13

Stats = dict[str, object]


class DomainGone(Exception):
    """The domain was undefined or migrated away between listing and reading it."""


def error_code(exc: BaseException) -> tuple[int | None, int | None]:
    """``(code, domain)`` of a libvirtError (``None`` for other exceptions)."""
    get_code = getattr(exc, "get_error_code", None)
    get_domain = getattr(exc, "get_error_domain", None)
    code = get_code() if callable(get_code) else None
    domain = get_domain() if callable(get_domain) else None
    return (code if isinstance(code, int) else None, domain if isinstance(domain, int) else None)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection to libvirtd is gone (not a per-domain issue)."""
    code, domain = error_code(exc)
    return code in (VIR_ERR_NO_CONNECT, VIR_ERR_INVALID_CONN) or domain in (
        VIR_FROM_RPC,
        VIR_FROM_REMOTE,
    )


def fetch_domain_stats(
    domain: Any, bulk: Mapping[str, object], libvirt_error: type[Exception]
) -> Stats:
    """``bulk`` completed with every group it lacks, read by per-domain calls.

    Raises :class:`DomainGone` when the domain no longer exists and re-raises a
    ``libvirt_error`` that is a connection error; any other failure skips one group.
    """
    stats: Stats = dict(bulk)
    name = str(domain.name())
    guard = _Guard(name, libvirt_error)
    missing = missing_groups(stats)
    if "state" in missing:
        state = guard.call("state", domain.state)
        if isinstance(state, list | tuple) and len(state) >= 2:
            stats["state.state"], stats["state.reason"] = state[0], state[1]
    active = stats_state(stats) in ACTIVE_STATES
    if "balloon" in missing:
        guard.fill(stats, "info", lambda: _memory_sizes(domain))
        if active:
            guard.fill(stats, "memoryStats", lambda: _memory_stats(domain))
    if not active:
        return stats  # a shut-off domain has no runtime counters to ask for
    if "cpu-total" in missing:
        guard.fill(stats, "cpu-total", lambda: _cpu_total(domain))
    if "vcpu" in missing:
        guard.fill(stats, "vcpu", lambda: _vcpus(domain))
    if missing & {"interface", "block"}:
        devices = guard.call("devices", lambda: parse_domain_devices(str(domain.XMLDesc(0))))
        if devices is not None:
            if "block" in missing:
                stats.update(_devices(guard, "block", devices.disks, domain.blockStats))
            if "interface" in missing:
                stats.update(_devices(guard, "net", devices.interfaces, domain.interfaceStats))
    return stats


def _memory_sizes(domain: Any) -> Stats:
    info = domain.info()  # [state, max memory KiB, memory KiB, vCPUs, CPU time ns]
    return {"balloon.maximum": info[1], "balloon.current": info[2]}


def _memory_stats(domain: Any) -> Stats:
    """The balloon driver's view; empty for a guest without a memballoon device."""
    memory = domain.memoryStats()
    stats: Stats = {}
    for key in ("actual", "rss", "usable", "unused", "available"):
        if key in memory:
            stats["balloon.current" if key == "actual" else f"balloon.{key}"] = memory[key]
    return stats


def _cpu_total(domain: Any) -> Stats:
    total = domain.getCPUStats(True)[0]
    return {
        "cpu.time": total.get("cpu_time"),
        "cpu.user": total.get("user_time"),
        "cpu.system": total.get("system_time"),
    }


def _vcpus(domain: Any) -> Stats:
    infos, _cpumaps = domain.vcpus()  # [(number, state, CPU time ns, host CPU)], pinning
    stats: Stats = {"vcpu.current": len(infos)}
    for number, _state, cpu_time, _cpu in infos:
        stats[f"vcpu.{number}.time"] = cpu_time
    return stats


_BLOCK_KEYS = ("rd.reqs", "rd.bytes", "wr.reqs", "wr.bytes")  # blockStats order, then errs
_NET_KEYS = (
    "rx.bytes",
    "rx.pkts",
    "rx.errs",
    "rx.drop",
    "tx.bytes",
    "tx.pkts",
    "tx.errs",
    "tx.drop",
)


def _devices(
    guard: _Guard, group: str, names: tuple[str, ...], read: Callable[[str], Any]
) -> Stats:
    keys = _BLOCK_KEYS if group == "block" else _NET_KEYS
    stats: Stats = {}
    index = 0
    for device in names:
        values = guard.call(f"{group}:{device}", functools.partial(read, device))
        if values is None:
            continue
        stats[f"{group}.{index}.name"] = device
        for key, value in zip(keys, values, strict=False):
            stats[f"{group}.{index}.{key}"] = value
        index += 1
    stats[f"{group}.count"] = index
    return stats


class _Guard:
    """Run one per-domain call; skip it (logged once) unless the caller must react."""

    def __init__(self, domain: str, libvirt_error: type[Exception]) -> None:
        self._domain = domain
        self._error = libvirt_error

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._error as exc:
            if is_connection_error(exc):
                raise
            if error_code(exc)[0] == VIR_ERR_NO_DOMAIN:
                raise DomainGone(self._domain) from exc
            _log_once.problem(
                f"{self._domain}:{what}",
                logging.DEBUG,
                "libvirt per-domain stats call failed; values skipped",
                domain=self._domain,
                call=what,
                error=str(exc),
            )
            return None
        except (ValueError, LookupError, TypeError, AttributeError) as exc:  # odd shapes
            _log_once.problem(
                f"{self._domain}:{what}",
                logging.WARNING,
                "libvirt per-domain stats answer not understood; values skipped",
                domain=self._domain,
                call=what,
                error=f"{type(exc).__name__}: {exc}",
            )
            return None

    def fill(self, stats: Stats, what: str, fn: Callable[[], Stats]) -> None:
        values = self.call(what, fn)
        if values:
            stats.update(values)
