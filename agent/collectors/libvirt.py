"""VM statistics from libvirt: state, vCPU and CPU time, memory, per-disk and per-NIC I/O.

One bulk ``getAllDomainStats()`` call (with ``NOWAIT``, so a domain whose QEMU monitor is
busy does not stall it) gives most of it on a real QEMU host. Whatever group the driver
did not return is read per domain, each domain in its own worker thread under one
deadline: a stuck domain is reported ``unavailable`` ("stats timed out") while every
other domain still comes back, and its stuck call is not started again until it returns.

libvirtd can restart under us. A connection error drops the connection, the cycle
reports no domains with an explicit ``error`` and every domain seen before as
unavailable, and a later cycle reconnects (immediately after a loss, then with doubling
back-off while connecting keeps failing). ``libvirt.open`` itself can hang on a daemon
that accepts but never answers, so it runs under the same deadline. A host without
libvirtd (or without libvirt at all) is simply "no data", logged once at debug.

The connection is read-only: monitoring never needs more, and libvirt grants it to
more users.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from novacron.agent.collectors import _libvirt_fetch as fetch
from novacron.agent.collectors._deadline import (
    DeadlineExceeded,
    Failed,
    Finished,
    KeyedCalls,
    TimedOut,
    call_with_deadline,
)
from novacron.agent.collectors._libvirt_model import (
    ACTIVE_STATES,
    DomainStateCounts,
    DomainStats,
    LibvirtReadings,
)
from novacron.agent.collectors._libvirt_parse import (
    add_rates,
    count_states,
    missing_groups,
    parse_domain_stats,
    stats_state,
)
from novacron.agent.collectors._units import format_bytes, format_number
from novacron.agent.collectors.base import (
    AvailabilityTracker,
    Collector,
    CollectorContext,
    CollectorSettings,
    register,
)
from novacron.protos.runtime.jsonlog import LogOnce
from novacron.protos.runtime.tomlconfig import positive

log = logging.getLogger(__name__)

# getAllDomainStats groups: state, cpu-total, balloon, vcpu, interface, block.
_STATS_GROUPS = 1 | 2 | 4 | 8 | 16 | 32
_FIRST_RETRY_SECONDS = 5.0
# Error codes that say "this flag is unknown here" (libvirt < 4.5 has no NOWAIT).
_UNSUPPORTED_FLAG_CODES = frozenset({3, 8, 74})  # NO_SUPPORT, INVALID_ARG, ARG_UNSUPPORTED

__all__ = ["LibvirtCollector", "LibvirtSettings"]


@dataclass(frozen=True)
class LibvirtSettings(CollectorSettings):
    uri: str = "qemu:///system"
    # Deadline for each libvirt call: the open, the bulk stats call and each domain's
    # per-domain reads (all domains run in parallel under one such deadline).
    timeout_seconds: float = 5.0
    # Longest wait between reconnection attempts while libvirtd stays unreachable.
    reconnect_max_seconds: float = 300.0

    def __post_init__(self) -> None:
        if not self.uri.strip():
            raise ValueError("uri: must not be empty")
        positive("timeout_seconds", self.timeout_seconds)
        positive("reconnect_max_seconds", self.reconnect_max_seconds)


class ConnectionLost(Exception):
    """libvirtd stopped answering or the connection broke; reconnect later."""


_Fetched = tuple[dict[str, object], float]  # (flat stats, monotonic time read)


@dataclass(frozen=True)
class _Sample:
    stats: DomainStats
    taken_at: float  # monotonic seconds, for rates


@register("libvirt", LibvirtSettings, default_enabled=True)
class LibvirtCollector(Collector[LibvirtSettings]):
    """Per-VM state, CPU, memory, disk and network counters and rates from libvirt."""

    def __init__(self, context: CollectorContext, settings: LibvirtSettings) -> None:
        super().__init__(context, settings)
        self._api: Any = None  # the libvirt module, once it imported
        self._conn: Any = None
        self._ever_connected = False
        self._connect_failures = 0
        self._next_connect_at = 0.0
        self._last_error: str | None = None
        self._nowait = True
        self._domain_calls: KeyedCalls[str, _Fetched] = KeyedCalls("libvirt-domain")
        self._tracker = AvailabilityTracker("libvirt")
        self._previous: dict[str, _Sample] = {}  # by domain UUID
        self._last_seen: set[str] = set()  # domain names of the last good cycle
        self._log = LogOnce(log)

    # -- the cycle -------------------------------------------------------------------

    def collect(self, now: float) -> LibvirtReadings:
        conn = self._connection(now)
        if conn is None:
            return self._offline(now)
        try:
            domains, counts, failed = self._read_domains(conn)
        except ConnectionLost as exc:
            self._lose_connection(conn, str(exc))
            return self._offline(now)
        listed = {d.name for d in domains} | set(failed)
        # A domain libvirt no longer lists was undefined or migrated away: that is not
        # silence, so it leaves the availability bookkeeping instead of lingering there.
        self._tracker.forget(self._last_seen - listed)
        self._last_seen = listed
        return LibvirtReadings(
            uri=self.settings.uri,
            connected=True,
            error=None,
            domain_counts=counts,
            domains=domains,
            unavailable=self._tracker.update((d.name for d in domains), failed, now),
        )

    def _offline(self, now: float) -> LibvirtReadings:
        """No data this cycle: say why, and list every domain seen before as unavailable."""
        reason = f"libvirt unreachable: {self._last_error}"
        return LibvirtReadings(
            uri=self.settings.uri,
            connected=False,
            error=self._last_error,
            domain_counts=None,
            domains=(),
            unavailable=self._tracker.update((), dict.fromkeys(self._last_seen, reason), now),
        )

    def _read_domains(
        self, conn: Any
    ) -> tuple[tuple[DomainStats, ...], DomainStateCounts, dict[str, str]]:
        entries = self._bulk_stats(conn)
        results: dict[str, DomainStats] = {}
        states: dict[str, str] = {}  # domain name -> state, for the counts
        pending: dict[str, tuple[Any, dict[str, object]]] = {}  # UUID -> (domain, bulk)
        names: dict[str, str] = {}  # UUID -> name
        for domain, bulk in entries:
            uuid, name = str(domain.UUIDString()), str(domain.name())
            names[uuid] = name
            states[name] = stats_state(bulk)
            if missing_groups(bulk) - self._groups_not_expected(bulk):
                pending[uuid] = (domain, bulk)
            else:
                results[uuid] = parse_domain_stats(name, uuid, bulk)
        taken_at = time.monotonic()
        samples = {uuid: _Sample(stats, taken_at) for uuid, stats in results.items()}
        failed: dict[str, str] = {}
        for uuid, outcome in self._fetch_per_domain(pending).items():
            name = names[uuid]
            match outcome:
                case Finished(value=(stats, fetched_at)):
                    samples[uuid] = _Sample(parse_domain_stats(name, uuid, stats), fetched_at)
                case TimedOut(running_seconds=seconds):
                    failed[name] = f"stats timed out (no answer for {seconds:.1f} s)"
                case Failed(error=error) if isinstance(error, fetch.DomainGone):
                    del states[name]  # undefined or migrated away meanwhile: not ours now
                case Failed(error=error) if self._is_connection_error(conn, error):
                    raise ConnectionLost(f"connection lost: {error}") from error
                case Failed(error=error):
                    failed[name] = f"stats failed: {type(error).__name__}: {error}"
        for uuid, sample in samples.items():
            states[names[uuid]] = sample.stats.state
        domains = tuple(
            sorted(
                (self._with_rates(uuid, sample) for uuid, sample in samples.items()),
                key=lambda d: d.name,
            )
        )
        self._previous = {uuid: s for uuid, s in self._previous.items() if uuid in names} | samples
        return domains, count_states(states.values()), failed

    @staticmethod
    def _groups_not_expected(bulk: dict[str, object]) -> set[str]:
        """A shut-off domain legitimately has no runtime groups; only memory sizes."""
        if stats_state(bulk) in ACTIVE_STATES:
            return set()
        return {"cpu-total", "vcpu", "interface", "block"}

    def _with_rates(self, uuid: str, sample: _Sample) -> DomainStats:
        previous = self._previous.get(uuid)
        if previous is None:
            return add_rates(sample.stats, None, 0.0)
        return add_rates(sample.stats, previous.stats, sample.taken_at - previous.taken_at)

    def _fetch_per_domain(
        self, pending: dict[str, tuple[Any, dict[str, object]]]
    ) -> dict[str, Finished[_Fetched] | Failed | TimedOut]:
        error_type = self._api.libvirtError

        def task(domain: Any, bulk: dict[str, object]) -> Callable[[], _Fetched]:
            def run() -> _Fetched:
                stats = fetch.fetch_domain_stats(domain, bulk, error_type)
                return stats, time.monotonic()

            return run

        calls = {uuid: task(domain, bulk) for uuid, (domain, bulk) in pending.items()}
        return self._domain_calls.run(calls, self.settings.timeout_seconds)

    def _bulk_stats(self, conn: Any) -> list[tuple[Any, dict[str, object]]]:
        """All domains with whatever groups the driver returns in one call.

        If the bulk call fails or times out, every domain is listed and read per domain.
        """
        api = self._api
        flags = 0
        if self._nowait:
            flags = getattr(api, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 0)
        try:
            entries = self._call(lambda: conn.getAllDomainStats(_STATS_GROUPS, flags), "bulk")
            self._log.recovered("bulk", "libvirt bulk stats work again")
            return [(domain, dict(stats)) for domain, stats in entries]
        except api.libvirtError as exc:
            if self._is_connection_error(conn, exc):
                raise ConnectionLost(f"connection lost: {exc}") from exc
            if flags and fetch.error_code(exc)[0] in _UNSUPPORTED_FLAG_CODES:
                self._nowait = False
                log.info("libvirt has no NOWAIT stats flag; using plain bulk stats")
                return self._bulk_stats(conn)
            problem = str(exc)
        except DeadlineExceeded as exc:
            problem = str(exc)
        self._log.problem(
            "bulk",
            logging.WARNING,
            "libvirt bulk stats failed; reading every domain on its own",
            uri=self.settings.uri,
            error=problem,
        )
        try:
            listed = self._call(lambda: conn.listAllDomains(0), "listAllDomains")
        except api.libvirtError as exc:
            raise ConnectionLost(f"cannot list domains: {exc}") from exc
        except DeadlineExceeded as exc:
            raise ConnectionLost(f"libvirtd not answering: {exc}") from exc
        return [(domain, {}) for domain in listed]

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        return call_with_deadline(fn, self.settings.timeout_seconds, f"libvirt-{what}")

    def _is_connection_error(self, conn: Any, error: BaseException) -> bool:
        if not isinstance(error, self._api.libvirtError):
            return False
        return fetch.is_connection_error(error) or not _alive(conn)

    # -- the connection --------------------------------------------------------------

    def _connection(self, now: float) -> Any:
        """The open connection, or a new one when the back-off allows; None if none."""
        if self._conn is not None:
            if _alive(self._conn):
                return self._conn
            self._lose_connection(self._conn, "connection is no longer alive")
        if now < self._next_connect_at:
            return None
        api = self._load_api()
        if api is None:
            return None
        try:
            conn = call_with_deadline(
                lambda: api.openReadOnly(self.settings.uri),
                self.settings.timeout_seconds,
                "libvirt-open",
                on_late_result=_close_quietly,
            )
        except (api.libvirtError, DeadlineExceeded) as exc:
            self._connect_failed(now, str(exc))
            return None
        self._conn = conn
        self._ever_connected = True
        self._connect_failures = 0
        self._last_error = None
        self._log.recovered("connect", "libvirt connected", uri=self.settings.uri)
        return conn

    def _connect_failed(self, now: float, error: str) -> None:
        self._connect_failures += 1
        delay = min(
            self.settings.reconnect_max_seconds,
            _FIRST_RETRY_SECONDS * 2 ** (self._connect_failures - 1),
        )
        self._next_connect_at = now + delay
        self._last_error = f"cannot connect to {self.settings.uri}: {error}"
        # Never connected: most likely no libvirtd on this host, which is "no data".
        level = logging.WARNING if self._ever_connected else logging.DEBUG
        self._log.problem(
            "connect",
            level,
            "libvirt not reachable; no VM data",
            uri=self.settings.uri,
            error=error,
            retry_in_seconds=delay,
        )

    def _lose_connection(self, conn: Any, error: str) -> None:
        """Forget a broken connection; the next cycle tries a new one at once."""
        self._conn = None
        self._next_connect_at = 0.0
        self._last_error = error
        self._log.problem("connect", logging.WARNING, "libvirt connection lost", error=error)
        _close_quietly(conn)

    def _load_api(self) -> Any:
        if self._api is None:
            try:
                import libvirt
            except ImportError as exc:  # libvirt-python present but no libvirt.so
                self._last_error = f"libvirt-python cannot be loaded: {exc}"
                self._log.problem("import", logging.DEBUG, "no libvirt; no VM data", error=str(exc))
                return None
            # libvirt prints every error to stderr by default; we log them ourselves.
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            self._api = libvirt
        return self._api

    def close(self) -> None:
        if self._conn is not None:
            _close_quietly(self._conn)
            self._conn = None

    # -- summary ---------------------------------------------------------------------

    @classmethod
    def summarize(cls, data: Any) -> list[str]:
        readings: LibvirtReadings = data
        if not readings.connected:
            lines = [f"{readings.uri}: no data ({readings.error})"]
        else:
            counts = readings.domain_counts or DomainStateCounts()
            lines = [
                f"{readings.uri}: {counts.total} domains, {counts.running} running, "
                f"{counts.paused} paused, {counts.shutoff} shut off"
            ]
        lines.extend(_domain_line(d) for d in readings.domains)
        for u in readings.unavailable:
            since = time.strftime("%H:%M:%S", time.gmtime(u.unavailable_since))
            lines.append(f"{u.device}: UNAVAILABLE since {since} UTC ({u.reason})")
        return lines


def _domain_line(d: DomainStats) -> str:
    rx = _total(i.rates.rx_bytes_per_second for i in d.interfaces)
    tx = _total(i.rates.tx_bytes_per_second for i in d.interfaces)
    rd = _total(k.rates.read_bytes_per_second for k in d.disks)
    wr = _total(k.rates.write_bytes_per_second for k in d.disks)
    return (
        f"{d.name:<20} {d.state:<11} vcpu {format_number(d.vcpu_count, 0)}"
        f"  cpu {format_number(d.cpu_time_seconds, 1, ' s')}"
        f"  mem {format_bytes(d.balloon_current_bytes)}/{format_bytes(d.balloon_maximum_bytes)}"
        f"  net rx {format_bytes(rx)}/s tx {format_bytes(tx)}/s"
        f"  disk rd {format_bytes(rd)}/s wr {format_bytes(wr)}/s"
    )


def _total(rates: Iterable[float | None]) -> float | None:
    """Sum of the known rates; ``None`` when none is known yet (first sample)."""
    known = [r for r in rates if r is not None]
    return sum(known) if known else None


def _alive(conn: Any) -> bool:
    try:
        return bool(conn.isAlive())
    except Exception:  # a closed or broken handle raises instead of answering
        return False


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # closing a broken connection may fail; nothing left to do
        log.debug("closing a libvirt connection failed", exc_info=True)
