"""The Azure public VM trace (V1) as a REQUESTS.csv for ``novacron-coordinator simulate``.

Input: a directory laid out like ``../shared/data/azure_vm_v1/`` (derived by Bergsma et
al., SOSP'21, huaweicloud/trace_generation_rnn, from Azure/AzurePublicDataset V1,
Cortez et al., SOSP'17; CC-BY-4.0, see the directory's LICENSE):

* ``v1.dev.txt``: one line per 300 s window, ``<seconds> f,f,|,f,...``: the start of the
  window and the flavour letter of every VM created in it, in order; ``|`` ends one
  tenant's batch (the VMs one subscription created together).
* ``flav_map.txt``: ``<vcpus>,<memory_GB> <letter>`` per flavour.
* ``v1.dev.c2100000.txt``: the same layout, each VM's lifetime bin instead of its
  flavour: ``U<n>`` the VM ended with a lifetime in bin ``n``, ``C<n>`` it was still
  running when the trace was cut at 2,100,000 s (it had run for bin ``n`` by then).
* ``v1.interval_map.txt``: ``<lifetime seconds> <bin>`` on a 300 s grid; bin ``n``
  covers [its smallest listed lifetime, the next bin's smallest) (the last bin ends
  300 s after its largest listed lifetime).

Conversion choices (deterministic for a given ``seed``):

* ``arrival_s``: seconds since the first window; the VMs of a window are spread evenly
  over it in file order (the trace only says which 300 s window they arrived in).
* ``departure_s``: for ``U<n>`` the arrival plus a lifetime drawn uniformly from bin
  ``n``'s interval (excluding its lower bound, so a lifetime is never 0) with
  ``numpy.random.default_rng(seed)``; empty for ``C<n>`` (still running at the cut, so
  it stays for the whole replay).
* ``memory_mib``: the flavour's GB x 1024, rounded (0.75 GB -> 768 MiB).
* ``group``: a tenant batch of 2 .. ``max_group_size`` VMs becomes one hard
  anti-affine server group (a small deployment created together is typically a
  replicated service); larger batches are scale-out fleets and stay ungrouped, as do
  single VMs. ``max_group_size=0`` writes no groups.

    python -m novacron.coordinator.placement.azure_trace ../shared/data/azure_vm_v1 requests.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novacron.coordinator.placement.simulate import SimRequest, format_requests

ARRIVALS_FILE = "v1.dev.txt"
LIFETIMES_FILE = "v1.dev.c2100000.txt"
FLAVOURS_FILE = "flav_map.txt"
BINS_FILE = "v1.interval_map.txt"
BATCH_END = "|"
MIB_PER_GB = 1024
DEFAULT_MAX_GROUP_SIZE = 8


class TraceError(ValueError):
    """The trace directory is incomplete or a file does not have the expected layout."""


@dataclass(frozen=True)
class Flavour:
    vcpus: int
    memory_mib: int


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from exc


def parse_flavours(lines: Sequence[str], source: str = FLAVOURS_FILE) -> dict[str, Flavour]:
    """``"4,28 i"`` -> ``{"i": Flavour(4, 28672)}``."""
    flavours: dict[str, Flavour] = {}
    for number, line in enumerate(lines, 1):
        try:
            sizes, letter = line.split()
            vcpus_text, memory_gb_text = sizes.split(",")
            flavour = Flavour(int(vcpus_text), round(float(memory_gb_text) * MIB_PER_GB))
        except ValueError:
            raise TraceError(
                f"{source} line {number}: expected '<vcpus>,<GB> <letter>', got {line!r}"
            ) from None
        if flavour.vcpus < 1 or flavour.memory_mib < 1:
            raise TraceError(f"{source} line {number}: sizes must be positive, got {line!r}")
        flavours[letter] = flavour
    return flavours


def parse_bins(lines: Sequence[str], source: str = BINS_FILE) -> list[tuple[float, float]]:
    """Lifetime interval ``(low, high)`` in seconds per bin number (index)."""
    low: dict[int, float] = {}
    high: dict[int, float] = {}
    grid = []
    for number, line in enumerate(lines, 1):
        try:
            seconds_text, bin_text = line.split()
            seconds, index = float(seconds_text), int(bin_text)
        except ValueError:
            raise TraceError(
                f"{source} line {number}: expected '<seconds> <bin>', got {line!r}"
            ) from None
        low[index] = min(low.get(index, seconds), seconds)
        high[index] = max(high.get(index, seconds), seconds)
        grid.append(seconds)
    if not low or sorted(low) != list(range(len(low))):
        raise TraceError(f"{source}: bins must be numbered 0..n without gaps")
    step = min(np.diff(sorted(set(grid)))) if len(set(grid)) > 1 else 300.0
    bins = []
    for index in range(len(low)):
        upper = low[index + 1] if index + 1 in low else high[index] + step
        if upper <= low[index]:
            raise TraceError(f"{source}: bin {index} is not above bin {index - 1}")
        bins.append((low[index], upper))
    return bins


def _windows(lines: Sequence[str], source: str) -> Iterator[tuple[float, list[str]]]:
    for number, line in enumerate(lines, 1):
        head, _, rest = line.partition(" ")
        try:
            start = float(head)
        except ValueError:
            raise TraceError(
                f"{source} line {number}: expected '<seconds> tokens', got {head!r}"
            ) from None
        yield start, [token for token in rest.strip().split(",") if token]


def convert(
    directory: Path, *, seed: int = 0, max_group_size: int = DEFAULT_MAX_GROUP_SIZE
) -> list[SimRequest]:
    """Every VM of the trace as a :class:`SimRequest`, in arrival order."""
    flavours = parse_flavours(_lines(directory / FLAVOURS_FILE), str(directory / FLAVOURS_FILE))
    bins = parse_bins(_lines(directory / BINS_FILE), str(directory / BINS_FILE))
    arrivals = _lines(directory / ARRIVALS_FILE)
    lifetimes = _lines(directory / LIFETIMES_FILE)
    if len(arrivals) != len(lifetimes):
        raise TraceError(
            f"{directory}: {ARRIVALS_FILE} has {len(arrivals)} lines, "
            f"{LIFETIMES_FILE} has {len(lifetimes)}"
        )
    builder = _Builder(flavours, bins, np.random.default_rng(seed), [])
    windows = list(
        zip(_windows(arrivals, ARRIVALS_FILE), _windows(lifetimes, LIFETIMES_FILE), strict=True)
    )
    starts = [start for (start, _), _ in windows]
    origin = starts[0] if starts else 0.0
    batch_number = 0
    for line, ((start, flavour_tokens), (life_start, life_tokens)) in enumerate(windows, 1):
        if start != life_start or len(flavour_tokens) != len(life_tokens):
            raise TraceError(
                f"line {line}: {ARRIVALS_FILE} and {LIFETIMES_FILE} disagree "
                f"(window {start:g} vs {life_start:g}, {len(flavour_tokens)} vs "
                f"{len(life_tokens)} tokens)"
            )
        if line > 1 and start <= starts[line - 2]:
            raise TraceError(f"{ARRIVALS_FILE} line {line}: windows must increase")
        width = starts[line] - start if line < len(starts) else _last_width(starts)
        batches = _batches(flavour_tokens, life_tokens, line)
        vms = sum(len(batch) for batch in batches)
        k = 0
        for batch in batches:
            batch_number += 1
            group = f"tenant-{batch_number:06d}" if 2 <= len(batch) <= max_group_size else ""
            for letter, life in batch:
                arrival = start - origin + width * k / vms
                builder.add(arrival, letter, life, group=group, line=line)
                k += 1
    return builder.requests


def _batches(
    flavour_tokens: Sequence[str], life_tokens: Sequence[str], line: int
) -> list[list[tuple[str, str]]]:
    """One window's tokens as tenant batches of (flavour, lifetime) pairs."""
    batches: list[list[tuple[str, str]]] = [[]]
    for flavour_token, life_token in zip(flavour_tokens, life_tokens, strict=True):
        if (flavour_token == BATCH_END) != (life_token == BATCH_END):
            raise TraceError(f"line {line}: batch separators do not line up")
        if flavour_token == BATCH_END:
            batches.append([])
        else:
            batches[-1].append((flavour_token, life_token))
    return [batch for batch in batches if batch]


def _last_width(starts: Sequence[float]) -> float:
    return starts[-1] - starts[-2] if len(starts) > 1 else 300.0


@dataclass
class _Builder:
    """Turns (flavour letter, lifetime token) pairs into requests, drawing lifetimes."""

    flavours: dict[str, Flavour]
    bins: list[tuple[float, float]]
    rng: np.random.Generator
    requests: list[SimRequest]

    def add(self, arrival: float, letter: str, life: str, *, group: str, line: int) -> None:
        flavour = self.flavours.get(letter)
        if flavour is None:
            raise TraceError(f"{ARRIVALS_FILE} line {line}: unknown flavour {letter!r}")
        try:
            state, number = life[0], int(life[1:])
            low, high = self.bins[number]
        except (ValueError, IndexError):
            raise TraceError(f"{LIFETIMES_FILE} line {line}: bad lifetime token {life!r}") from None
        if state not in {"U", "C"}:
            raise TraceError(f"{LIFETIMES_FILE} line {line}: bad lifetime token {life!r}")
        draw = float(self.rng.random())  # drawn for every VM: one VM's change moves no other
        departure = None if state == "C" else round(arrival + high - draw * (high - low), 3)
        self.requests.append(
            SimRequest(
                request_id=f"az-{len(self.requests):06d}",
                arrival_seconds=round(arrival, 3),
                departure_seconds=departure,
                vcpus=flavour.vcpus,
                memory_mib=flavour.memory_mib,
                group=group,
            )
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace_dir", type=Path, help="e.g. ../shared/data/azure_vm_v1")
    parser.add_argument("out", type=Path, help="REQUESTS.csv to write")
    parser.add_argument("--seed", type=int, default=0, help="lifetime draws (default 0)")
    parser.add_argument(
        "--max-group-size",
        type=int,
        default=DEFAULT_MAX_GROUP_SIZE,
        help="largest tenant batch made an anti-affine group "
        f"(default {DEFAULT_MAX_GROUP_SIZE}; 0: none)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N VMs")
    args = parser.parse_args(argv)
    try:
        requests = convert(args.trace_dir, seed=args.seed, max_group_size=args.max_group_size)
    except TraceError as exc:
        print(f"azure_trace: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(format_requests(requests[: args.limit]), encoding="utf-8")
    print(f"{min(len(requests), args.limit or len(requests))} requests -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
