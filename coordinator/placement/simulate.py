"""What-if replay: a stream of VM requests against a fleet, through the real engine.

``novacron-coordinator simulate`` (:mod:`.simulate_cli`) reads a fleet (``HOSTS.csv``,
:func:`.hosts_csv.hosts_from_csv`) and a request stream (``REQUESTS.csv``, here) and
replays the stream in time order: every arrival goes through :func:`.engine.select` on
the current :class:`.hosts.HostTable` exactly as ``SelectHosts`` would, the chosen host
is charged with :meth:`.hosts.HostTable.allocate`, and every departure releases it again.
Nothing here knows how hosts are ranked; the simulator only plays the clock, so a
what-if answer is the production answer.

Events at the same instant: departures first (capacity freed at ``t`` is usable by an
arrival at ``t``), then arrivals in file order. A request whose ``departure_s`` is empty
stays until the end.

The report (:class:`SimulationReport`) defines its measures precisely:

* **active host**: a host running at least one VM (``vm_count > 0``).
* **utilisation** per resource: used / allocatable (total x the policy's allocation
  ratio, i.e. what the capacity filter allows) summed over the active hosts.
  ``utilisation_mean`` is its time-weighted mean over the replay (only instants with an
  active host count), ``utilisation_final`` its value after the last event.
* **stranded capacity**: free vCPUs, memory and GPUs on hosts where *no request shape
  of the stream* (vCPUs, memory, GPUs, GPU model) fits any more -- e.g. free memory on a
  host without a free vCPU. It is a capacity notion: it ignores health and state filters.
  Reported after the last event and time-weighted over the replay.
* **decision latency**: wall time of each arrival's :func:`.engine.select` call.

The replay keeps its running sums incrementally (one host row changes per event), so a
long trace costs one engine call per arrival and O(request shapes) per event besides.
:class:`Replay` exposes ``place``/``release`` so a later mode (consolidation, evacuation)
can add its own events between arrivals.
"""

from __future__ import annotations

import csv
import heapq
import io
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from novacron.coordinator.placement.engine import Decision, Policy, select
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest, ServerGroup
from novacron.coordinator.placement.settings import OBJECTIVES, PlacementSettings
from novacron.protos.runtime.tomlconfig import ConfigError

REQUEST_COLUMNS = (
    "request_id",
    "arrival_s",
    "departure_s",
    "vcpus",
    "memory_mib",
    "gpus",
    "gpu_model",
    "group",
)
REQUIRED_REQUEST_COLUMNS = ("request_id", "arrival_s", "vcpus", "memory_mib")
ASSIGNMENT_COLUMNS = ("request_id", "host_id")
RESOURCES = ("vcpus", "memory_mib", "gpus")  # what the report measures per resource

# --------------------------------------------------------------------- REQUESTS.csv


def _error(source: str, line: int | None, column: str, problem: str) -> ConfigError:
    """A REQUESTS.csv problem, worded like HOSTS.csv's: ``FILE:LINE: COLUMN: problem``."""
    return ConfigError(source if line is None else f"{source}:{line}", column, problem)


@dataclass(frozen=True)
class SimRequest:
    """One row of REQUESTS.csv: a VM that arrives, maybe leaves, and may be in a group."""

    request_id: str
    arrival_seconds: float
    departure_seconds: float | None  # None: stays until the end of the replay
    vcpus: int
    memory_mib: int
    gpus: int = 0
    gpu_model: str = ""  # "" = any model
    group: str = ""  # "" = none; members of one group are hard anti-affine

    @property
    def shape(self) -> RequestShape:
        return RequestShape(self.vcpus, self.memory_mib, self.gpus, self.gpu_model)

    def placement_request(self, member_hosts: Sequence[str] = ()) -> PlacementRequest:
        """The engine's request; ``member_hosts`` are the hosts running active members."""
        group = None
        if self.group:
            group = ServerGroup(
                group_id=self.group,
                policy=GroupPolicy.ANTI_AFFINITY,
                hard=True,
                member_hosts=tuple(member_hosts),
            )
        return PlacementRequest(
            vcpus=self.vcpus,
            memory_mib=self.memory_mib,
            gpus=self.gpus,
            gpu_model=self.gpu_model,
            server_group=group,
            vm_uuid=self.request_id,
        )


@dataclass(frozen=True, order=True)
class RequestShape:
    """What a request needs, for the stranded-capacity check."""

    vcpus: int
    memory_mib: int
    gpus: int
    gpu_model: str


def _cell(row: Mapping[str, str | None], column: str) -> str:
    return (row.get(column) or "").strip()


def _seconds(text: str, source: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(source, line, column, f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise _error(source, line, column, f"expected seconds >= 0, got {text!r}")
    return value


def _count(text: str, source: str, line: int, column: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _error(source, line, column, f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise _error(source, line, column, f"expected >= {minimum}, got {value}")
    return value


def parse_requests(text: str, source: str = "REQUESTS.csv") -> list[SimRequest]:
    """Parse REQUESTS.csv text; any problem is a ConfigError naming line and column.

    Strict on purpose: an unknown column is usually a typo (``memory_gb``) that would
    otherwise silently change the what-if answer.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or ()]
    if not header:
        raise _error(source, None, "", "empty file (expected a header line)")
    reader.fieldnames = header
    unknown = [name for name in header if name not in REQUEST_COLUMNS]
    if unknown:
        raise _error(source, 1, unknown[0], f"unknown column (known: {', '.join(REQUEST_COLUMNS)})")
    missing = [name for name in REQUIRED_REQUEST_COLUMNS if name not in header]
    if missing:
        raise _error(source, 1, missing[0], "required column missing")
    requests: list[SimRequest] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise _error(source, line, "", "more cells than header columns")
        if not any(_cell(row, column) for column in header):
            continue  # blank line
        request_id = _cell(row, "request_id")
        if not request_id:
            raise _error(source, line, "request_id", "empty")
        if request_id in seen:
            raise _error(
                source, line, "request_id", f"{request_id!r} repeats line {seen[request_id]}"
            )
        seen[request_id] = line
        arrival = _seconds(_cell(row, "arrival_s"), source, line, "arrival_s")
        departure_text = _cell(row, "departure_s")
        departure = None
        if departure_text:
            departure = _seconds(departure_text, source, line, "departure_s")
            if departure <= arrival:
                raise _error(
                    source,
                    line,
                    "departure_s",
                    f"must be later than arrival_s ({departure_text} <= {arrival:g})",
                )
        gpus_text = _cell(row, "gpus")
        requests.append(
            SimRequest(
                request_id=request_id,
                arrival_seconds=arrival,
                departure_seconds=departure,
                vcpus=_count(_cell(row, "vcpus"), source, line, "vcpus", 1),
                memory_mib=_count(_cell(row, "memory_mib"), source, line, "memory_mib", 1),
                gpus=_count(gpus_text, source, line, "gpus", 0) if gpus_text else 0,
                gpu_model=_cell(row, "gpu_model"),
                group=_cell(row, "group"),
            )
        )
    return requests


def read_requests(path: Path) -> list[SimRequest]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(str(path), None, "", f"cannot read: {exc}") from exc
    return parse_requests(text, str(path))


def _seconds_text(value: float) -> str:
    """Shortest text that reads back as exactly ``value`` ("12", "0.125")."""
    return str(int(value)) if value.is_integer() else repr(value)


def format_requests(requests: Iterable[SimRequest]) -> str:
    """REQUESTS.csv text for ``requests`` (the inverse of :func:`parse_requests`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REQUEST_COLUMNS)
    for r in requests:
        writer.writerow(
            (
                r.request_id,
                _seconds_text(r.arrival_seconds),
                "" if r.departure_seconds is None else _seconds_text(r.departure_seconds),
                r.vcpus,
                r.memory_mib,
                r.gpus,
                r.gpu_model,
                r.group,
            )
        )
    return out.getvalue()


def format_assignments(assignments: Mapping[str, str]) -> str:
    """``request_id,host_id`` per request in replay input order ("" host: unplaced)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ASSIGNMENT_COLUMNS)
    writer.writerows(assignments.items())
    return out.getvalue()


# ------------------------------------------------------------------------ policies


@dataclass(frozen=True)
class SimulationPolicy:
    """A named preset the simulator runs the engine with.

    ``objectives`` None keeps the config's ``[placement] objectives``; otherwise every
    request carries these objective weights. Per-factor ``weights`` always come from
    the config.
    """

    name: str
    description: str
    objectives: Mapping[str, float] | None = None


def _profile(**weights: float) -> Mapping[str, float]:
    return MappingProxyType({name: weights.get(name, 0.0) for name in OBJECTIVES})


POLICIES: Mapping[str, SimulationPolicy] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            SimulationPolicy("default", "the config's [placement] objectives and weights"),
            SimulationPolicy("spread", "spread only: most free capacity first", _profile(spread=1)),
            SimulationPolicy("pack", "pack only: fullest host that fits first", _profile(pack=1)),
            SimulationPolicy(
                "reliability",
                "hardware risk only (failure, anomaly, health)",
                _profile(reliability=1),
            ),
            SimulationPolicy("performance", "contention and latency only", _profile(performance=1)),
            SimulationPolicy("energy", "power, carbon and cost only", _profile(energy=1)),
            # Every objective at 0: all scores tie and the engine breaks ties by table row,
            # so rank 1 is the first host in HOSTS.csv order that passes every filter (the
            # classic bin-packing baseline), through the same filters as every other policy.
            SimulationPolicy(
                "first-fit", "filters only; first passing host in HOSTS.csv order", _profile()
            ),
        )
    }
)


# -------------------------------------------------------------------------- replay


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


@dataclass(frozen=True)
class SimulationReport:
    """What the engine did with the stream; see the module docstring for definitions."""

    policy: str
    hosts: int
    requests: int
    placed: int
    unplaced: int
    unplaced_by_reason: Mapping[str, int]  # "filter: reason" that removed most hosts
    peak_active_hosts: int
    peak_active_at_seconds: float | None
    final_active_hosts: int
    utilisation_mean: Mapping[str, float | None]  # resource -> 0..1 (None: no capacity)
    utilisation_final: Mapping[str, float | None]
    stranded_final: Mapping[str, float]  # resource -> free units nobody in the mix can use
    stranded_mean: Mapping[str, float]
    stranded_hosts_final: int
    decisions: int
    latency_p50_seconds: float | None
    latency_p99_seconds: float | None
    decisions_per_second: float | None
    start_seconds: float | None
    end_seconds: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            name: dict(value) if isinstance(value, Mapping) else value
            for name, value in self.__dict__.items()
        }


@dataclass(frozen=True)
class SimulationResult:
    report: SimulationReport
    assignments: Mapping[str, str]  # request_id -> host_id ("" unplaced), input order


def _unplaced_reason(decision: Decision) -> str:
    """The single reason a request found no host: the filter reason removing most hosts."""
    if not decision.filtered_out:
        return "; ".join(decision.no_valid_host_reasons) or "no hosts"
    worst = max(decision.filtered_out, key=lambda count: count.hosts)
    return f"{worst.filter}: {worst.reason}"


@dataclass
class _Integral:
    """Time integral of a piecewise-constant value (for time-weighted means)."""

    area: float = 0.0
    duration: float = 0.0

    def add(self, value: float, seconds: float) -> None:
        self.area += value * seconds
        self.duration += seconds

    def mean(self) -> float | None:
        return self.area / self.duration if self.duration > 0 else None


class Replay:
    """The fleet during a replay: the current host table and the report's running sums.

    One host row changes per ``place``/``release``; the sums over active hosts and the
    stranded capacity are updated for that row only.
    """

    def __init__(
        self, hosts: HostTable, settings: PlacementSettings, shapes: Iterable[RequestShape]
    ) -> None:
        self.table = hosts
        self._ratios = {
            "vcpus": settings.cpu_allocation_ratio,
            "memory_mib": settings.ram_allocation_ratio,
            "gpus": 1.0,
        }
        shape_list = sorted(set(shapes))
        self._shape_need = np.array(
            [[s.vcpus, s.memory_mib, s.gpus] for s in shape_list], dtype=np.float64
        ).reshape(len(shape_list), len(RESOURCES))
        self._shape_model = np.array(
            [s.gpu_model if s.gpus else "" for s in shape_list], dtype=np.str_
        )
        self._host_model = np.asarray(hosts.texts["gpu_model"])
        n = len(hosts)
        self._allocatable = np.stack(
            [np.nan_to_num(hosts.number(f"{r}_total")) * self._ratios[r] for r in RESOURCES],
            axis=1,
        )
        self._used = np.zeros((n, len(RESOURCES)))
        self._vms = np.zeros(n)
        self._stranded = np.zeros((n, len(RESOURCES)))
        self._refresh(np.arange(n))
        self.active_sum_used = (self._used * (self._vms > 0)[:, None]).sum(axis=0)
        self.active_sum_allocatable = (self._allocatable * (self._vms > 0)[:, None]).sum(axis=0)
        self.stranded_sum = self._stranded.sum(axis=0)
        self.active_hosts = int((self._vms > 0).sum())
        self.peak_active_hosts = self.active_hosts
        self.peak_active_at_seconds: float | None = None
        self.now: float | None = None
        self._utilisation = [_Integral() for _ in RESOURCES]
        self._stranded_time = [_Integral() for _ in RESOURCES]
        # group id -> hosts running its active members (repeats = count)
        self.group_hosts: dict[str, list[str]] = {}

    def _refresh(self, rows: npt.NDArray[np.intp]) -> None:
        """Re-read ``rows``' usage from the table and recompute their stranded capacity."""
        numbers = self.table.numbers
        self._used[rows] = np.stack(
            [np.nan_to_num(numbers[f"{r}_used"][rows]) for r in RESOURCES], axis=1
        )
        self._vms[rows] = np.nan_to_num(numbers["vm_count"][rows])
        free = self._allocatable[rows] - self._used[rows]  # (rows, resources)
        fits = np.all(self._shape_need[None, :, :] <= free[:, None, :] + 1e-9, axis=2)
        fits &= (self._shape_model[None, :] == "") | (
            self._shape_model[None, :] == self._host_model[rows][:, None]
        )
        self._stranded[rows] = np.where(fits.any(axis=1)[:, None], 0.0, np.maximum(free, 0.0))

    def utilisation(self) -> dict[str, float | None]:
        return {
            r: (
                float(self.active_sum_used[i] / self.active_sum_allocatable[i])
                if self.active_sum_allocatable[i] > 0
                else None
            )
            for i, r in enumerate(RESOURCES)
        }

    def advance(self, now: float) -> None:
        """Move the clock to ``now``, integrating the state held since the last event."""
        if self.now is not None and now > self.now:
            elapsed = now - self.now
            if self.active_hosts:
                for i, value in enumerate(self.utilisation().values()):
                    if value is not None:
                        self._utilisation[i].add(value, elapsed)
            for i in range(len(RESOURCES)):
                self._stranded_time[i].add(float(self.stranded_sum[i]), elapsed)
        if self.now is None or now > self.now:
            self.now = now
        if self.peak_active_at_seconds is None:  # the fleet as given is the peak so far
            self.peak_active_at_seconds = now

    def _change(self, row: int, request: SimRequest, sign: int) -> None:
        was_active = self._vms[row] > 0
        before_used = self._used[row].copy()
        before_stranded = self._stranded[row].copy()
        self.table = self.table.allocate(
            row,
            vcpus=sign * request.vcpus,
            memory_mib=sign * request.memory_mib,
            gpus=sign * request.gpus,
            vms=sign,
            group_id=request.group,
        )
        self._refresh(np.array([row]))
        is_active = self._vms[row] > 0
        if was_active:
            self.active_sum_used -= before_used
            self.active_sum_allocatable -= self._allocatable[row]
        if is_active:
            self.active_sum_used += self._used[row]
            self.active_sum_allocatable += self._allocatable[row]
        self.active_hosts += int(is_active) - int(was_active)
        self.stranded_sum += self._stranded[row] - before_stranded
        if self.active_hosts > self.peak_active_hosts:
            self.peak_active_hosts = self.active_hosts
            self.peak_active_at_seconds = self.now

    def place(self, request: SimRequest, row: int) -> None:
        self._change(row, request, +1)
        if request.group:
            self.group_hosts.setdefault(request.group, []).append(str(self.table.host_ids[row]))

    def release(self, request: SimRequest, row: int) -> None:
        self._change(row, request, -1)
        if request.group:
            self.group_hosts[request.group].remove(str(self.table.host_ids[row]))

    def utilisation_mean(self) -> dict[str, float | None]:
        return {r: self._utilisation[i].mean() for i, r in enumerate(RESOURCES)}

    def stranded_final(self) -> dict[str, float]:
        return {r: float(self.stranded_sum[i]) for i, r in enumerate(RESOURCES)}

    def stranded_mean(self) -> dict[str, float]:
        return {r: self._stranded_time[i].mean() or 0.0 for i, r in enumerate(RESOURCES)}

    def stranded_hosts(self) -> int:
        return int(np.any(self._stranded > 0, axis=1).sum())


Chooser = Callable[[HostTable, PlacementRequest], tuple[int | None, Decision]]


def engine_chooser(policy: Policy, preset: SimulationPolicy) -> Chooser:
    """How the replay picks a host: rank 1 of :func:`.engine.select` under ``preset``."""

    def choose(table: HostTable, request: PlacementRequest) -> tuple[int | None, Decision]:
        decision = select(table, request, policy, objectives=preset.objectives, max_results=1)
        return (decision.hosts[0].row if decision.hosts else None), decision

    return choose


def replay(
    hosts: HostTable,
    requests: Sequence[SimRequest],
    choose: Chooser,
    settings: PlacementSettings,
    *,
    policy_name: str = "",
    clock: Callable[[], float] = time.perf_counter,
) -> SimulationResult:
    """Replay ``requests`` against ``hosts`` in time order (departures first at a tie)."""
    state = Replay(hosts, settings, (r.shape for r in requests))
    # (time, 0 = departure / 1 = arrival, input position)
    events: list[tuple[float, int, int]] = [
        (r.arrival_seconds, 1, i) for i, r in enumerate(requests)
    ]
    heapq.heapify(events)
    placed_row: dict[int, int] = {}
    reasons: Counter[str] = Counter()
    latencies: list[float] = []
    start = events[0][0] if events else None
    while events:
        when, kind, position = heapq.heappop(events)
        state.advance(when)
        request = requests[position]
        if kind == 0:
            state.release(request, placed_row[position])
            continue
        engine_request = request.placement_request(state.group_hosts.get(request.group, ()))
        started = clock()
        row, decision = choose(state.table, engine_request)
        latencies.append(clock() - started)
        if row is None:
            reasons[_unplaced_reason(decision)] += 1
            continue
        placed_row[position] = row
        state.place(request, row)
        if request.departure_seconds is not None:
            heapq.heappush(events, (request.departure_seconds, 0, position))
    host_ids = hosts.host_ids
    assignments = {
        r.request_id: (str(host_ids[placed_row[i]]) if i in placed_row else "")
        for i, r in enumerate(requests)
    }
    total_latency = sum(latencies)
    report = SimulationReport(
        policy=policy_name,
        hosts=len(hosts),
        requests=len(requests),
        placed=len(placed_row),
        unplaced=len(requests) - len(placed_row),
        unplaced_by_reason=MappingProxyType(dict(reasons.most_common())),
        peak_active_hosts=state.peak_active_hosts,
        peak_active_at_seconds=state.peak_active_at_seconds,
        final_active_hosts=state.active_hosts,
        utilisation_mean=MappingProxyType(state.utilisation_mean()),
        utilisation_final=MappingProxyType(state.utilisation()),
        stranded_final=MappingProxyType(state.stranded_final()),
        stranded_mean=MappingProxyType(state.stranded_mean()),
        stranded_hosts_final=state.stranded_hosts(),
        decisions=len(latencies),
        latency_p50_seconds=_percentile(latencies, 50),
        latency_p99_seconds=_percentile(latencies, 99),
        decisions_per_second=len(latencies) / total_latency if total_latency > 0 else None,
        start_seconds=start,
        end_seconds=state.now,
    )
    return SimulationResult(report, MappingProxyType(assignments))


def simulate(
    hosts: HostTable,
    requests: Sequence[SimRequest],
    settings: PlacementSettings,
    policy_name: str = "default",
) -> SimulationResult:
    """Replay ``requests`` with the named preset of :data:`POLICIES` (KeyError: unknown)."""
    preset = POLICIES[policy_name]
    policy = Policy.from_settings(settings)
    choose = engine_chooser(policy, preset)
    return replay(hosts, requests, choose, settings, policy_name=policy_name)
