"""CPU inventory: model, flags, topology, frequencies, memory and NUMA layout.

Placement matches VMs to hosts on this (CPU feature constraints such as ``avx512f``,
nested virtualization needing ``vmx``/``svm``, NUMA fit), and it changes only with
hardware or kernel changes. Reading it is slow -- py-cpuinfo takes about a second and
runs a Python subprocess -- so the collector reads it once and caches it:
:meth:`CpuInfoCollector.refresh` reads everything again (the daemon calls it on SIGHUP),
and :meth:`~CpuInfoCollector.collect` returns the cached inventory at no cost.

Sources:

* py-cpuinfo for model, vendor, architecture, flags, advertised/actual Hz and caches.
  It is run as ``python -m cpuinfo --json`` -- exactly what ``cpuinfo.get_cpu_info()``
  does internally -- but with a timeout, which ``get_cpu_info()`` lacks. It reads the
  running machine's CPUID and ``/proc/cpuinfo`` and cannot be pointed at a fixture root.
* psutil for core and thread counts, min/max frequency and total memory.
* ``<sysfs_root>/devices/system/cpu/cpu<N>/topology/physical_package_id`` for sockets and
  ``<sysfs_root>/devices/system/node/node<N>/`` for NUMA nodes (see :mod:`._numa`).

py-cpuinfo may fail or return a partial dict: every missing or odd key is ``None``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psutil

from novacron.agent.collectors._numa import (
    NumaNode,
    format_cpulist,
    parse_cpulist,
    parse_distances,
    parse_node_mem_total,
)
from novacron.agent.collectors._procfs import point_psutil_at
from novacron.agent.collectors._sysfs import SysfsReader, list_names, numbered_entries
from novacron.agent.collectors._units import format_bytes, format_number
from novacron.agent.collectors.base import (
    Collector,
    CollectorContext,
    CollectorSettings,
    register,
)
from novacron.protos.runtime.jsonlog import LogOnce
from novacron.protos.runtime.tomlconfig import positive

log = logging.getLogger(__name__)

T = TypeVar("T")

_HZ_PER_MHZ = 1_000_000
_CACHE_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?\s*$", re.IGNORECASE)
_CACHE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


@dataclass(frozen=True)
class CpuInfoSettings(CollectorSettings):
    # py-cpuinfo normally answers in 1-2 s; a hung CPUID probe must not stall start-up.
    py_cpuinfo_timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        positive("py_cpuinfo_timeout_seconds", self.py_cpuinfo_timeout_seconds)


@dataclass(frozen=True)
class ProcessorInfo:
    """What py-cpuinfo reports; None for every key it did not give."""

    model: str | None  # brand_raw, e.g. "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    vendor: str | None  # vendor_id_raw, e.g. "GenuineIntel", "AuthenticAMD"
    arch: str | None  # "X86_64", "ARM_8", ...
    bits: int | None
    advertised_frequency_mhz: float | None
    actual_frequency_mhz: float | None  # at the moment of reading
    l2_cache_bytes: int | None
    l3_cache_bytes: int | None
    flags: tuple[str, ...] | None  # sorted, lower case, as /proc/cpuinfo spells them


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU flags placement constrains on; None when the flags are unknown."""

    virtualization: bool | None  # vmx (Intel VT-x) or svm (AMD-V): can run KVM guests
    avx2: bool | None
    avx512f: bool | None
    aes: bool | None  # AES-NI
    sse4_2: bool | None


@dataclass(frozen=True)
class CpuInventory:
    processor: ProcessorInfo
    features: CpuFeatures
    sockets: int | None  # distinct physical packages in sysfs topology
    cores: int | None  # physical cores (psutil)
    threads: int | None  # logical CPUs (psutil)
    min_frequency_mhz: float | None  # cpufreq scaling limits; None without cpufreq
    max_frequency_mhz: float | None
    memory_total_bytes: int | None
    hostname: str
    kernel_release: str
    numa_nodes: tuple[NumaNode, ...]  # empty when the kernel shows no NUMA layout
    read_at_seconds: float  # unix time this inventory was read (start-up or refresh)


def run_py_cpuinfo(timeout_seconds: float) -> dict[str, Any]:
    """``cpuinfo.get_cpu_info()`` in a child process, with a timeout.

    py-cpuinfo itself runs its CPUID probe in a child Python process (a bad probe can
    crash the interpreter); ``get_cpu_info()`` waits for it forever, so it is started
    here the same way with a deadline. Raises OSError, ``subprocess.TimeoutExpired``
    or ValueError (non-zero exit, output that is not a JSON object).
    """
    result = subprocess.run(
        # -I (isolated): no PYTHONPATH, no user site and no current directory on the path,
        # so nothing named "cpuinfo" elsewhere can stand in for the real package.
        [sys.executable, "-I", "-m", "cpuinfo", "--json"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout_seconds,
        check=False,
    )
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", errors="replace").strip()[-200:]
        raise ValueError(f"py-cpuinfo exited with {result.returncode}: {stderr}")
    info = json.loads(result.stdout)
    if not isinstance(info, dict):
        raise ValueError(f"py-cpuinfo printed {type(info).__name__}, not an object")
    return info


def _string(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def parse_hz(value: Any) -> float | None:
    """py-cpuinfo's ``hz_advertised``/``hz_actual`` ``[hz, fraction]`` -> MHz; 0 -> None."""
    if isinstance(value, list | tuple) and value:
        hz = _positive_int(value[0])
        return hz / _HZ_PER_MHZ if hz is not None else None
    return None


def parse_cache_size(value: Any) -> int | None:
    """A cache size in bytes: py-cpuinfo 9 gives ints, older versions ``"512 KB"``."""
    if isinstance(value, str):
        match = _CACHE_SIZE.match(value)
        if match is None:
            return None
        size = int(float(match.group(1)) * _CACHE_UNITS[match.group(2).upper()])
        return size or None
    return _positive_int(value)


def parse_py_cpuinfo(info: Mapping[str, Any]) -> ProcessorInfo:
    """Pick the inventory fields from a ``get_cpu_info()`` dict; odd or missing keys -> None."""
    flags = info.get("flags")
    return ProcessorInfo(
        model=_string(info.get("brand_raw")),
        vendor=_string(info.get("vendor_id_raw")),
        arch=_string(info.get("arch")),
        bits=_positive_int(info.get("bits")),
        advertised_frequency_mhz=parse_hz(info.get("hz_advertised")),
        actual_frequency_mhz=parse_hz(info.get("hz_actual")),
        l2_cache_bytes=parse_cache_size(info.get("l2_cache_size")),
        l3_cache_bytes=parse_cache_size(info.get("l3_cache_size")),
        flags=(
            tuple(sorted({f.lower() for f in flags if isinstance(f, str)}))
            if isinstance(flags, list)
            else None
        ),
    )


def cpu_features(flags: tuple[str, ...] | None) -> CpuFeatures:
    """Surface the flags placement cares about as booleans (None when flags are unknown)."""
    if flags is None:
        return CpuFeatures(None, None, None, None, None)
    present = set(flags)
    return CpuFeatures(
        virtualization=bool(present & {"vmx", "svm"}),
        avx2="avx2" in present,
        avx512f="avx512f" in present,
        aes="aes" in present,
        sse4_2="sse4_2" in present,
    )


@register("cpuinfo", CpuInfoSettings, default_enabled=True)
class CpuInfoCollector(Collector[CpuInfoSettings]):
    """Static CPU inventory: model, flags, topology, frequencies, memory, NUMA (cached)."""

    def __init__(self, context: CollectorContext, settings: CpuInfoSettings) -> None:
        # Nothing is read here: the runner builds collectors in the main thread before
        # any deadline applies, so the slow first read happens in the first collect().
        super().__init__(context, settings)
        self._log = LogOnce(log)
        self._sysfs = SysfsReader(log)
        self._lock = threading.Lock()
        self._inventory: CpuInventory | None = None

    def collect(self, now: float) -> CpuInventory:
        """The cached inventory; the first call reads it."""
        with self._lock:
            cached = self._inventory
        return cached if cached is not None else self.refresh()

    def refresh(self) -> CpuInventory:
        """Read the whole inventory again (hardware or kernel may have changed) and cache it.

        When py-cpuinfo fails on a refresh, the processor details of the previous read
        are kept: a CPU model does not change while the machine runs.
        """
        with self._lock:
            previous = self._inventory
        processor = self._read_processor(previous.processor if previous else None)
        point_psutil_at(self.context.procfs_root)
        min_mhz, max_mhz = self._frequency_limits()
        uname = os.uname()
        inventory = CpuInventory(
            processor=processor,
            features=cpu_features(processor.flags),
            sockets=self._sockets(),
            cores=self._psutil("cores", lambda: psutil.cpu_count(logical=False)),
            threads=self._psutil("threads", lambda: psutil.cpu_count(logical=True)),
            min_frequency_mhz=min_mhz,
            max_frequency_mhz=max_mhz,
            memory_total_bytes=self._psutil("memory", lambda: psutil.virtual_memory().total),
            hostname=uname.nodename,
            kernel_release=uname.release,
            numa_nodes=self._numa_nodes(),
            read_at_seconds=time.time(),
        )
        with self._lock:
            self._inventory = inventory
        return inventory

    def _read_processor(self, fallback: ProcessorInfo | None) -> ProcessorInfo:
        try:
            info = run_py_cpuinfo(self.settings.py_cpuinfo_timeout_seconds)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._log.problem(
                "py-cpuinfo",
                logging.WARNING,
                "py-cpuinfo failed; CPU model and flags unknown"
                if fallback is None
                else "py-cpuinfo failed; keeping the CPU model and flags read before",
                error=f"{type(exc).__name__}: {exc}",
            )
            return fallback or parse_py_cpuinfo({})
        self._log.recovered("py-cpuinfo", "py-cpuinfo works again")
        return parse_py_cpuinfo(info)

    def _psutil(self, what: str, read: Callable[[], T | None]) -> T | None:
        try:
            return read()
        except Exception as exc:  # psutil raises many types for odd kernels/roots
            self._log.problem(
                f"psutil:{what}",
                logging.DEBUG,
                "psutil could not tell",
                what=what,
                error=f"{type(exc).__name__}: {exc}",
            )
            return None

    def _frequency_limits(self) -> tuple[float | None, float | None]:
        # Without cpufreq (most VMs) psutil reports min = max = 0: unknown, not 0 MHz.
        freq = self._psutil("frequency", psutil.cpu_freq)
        if freq is None:
            return None, None
        return (freq.min or None), (freq.max or None)

    def _sockets(self) -> int | None:
        cpu_dir = self.context.sysfs_root / "devices/system/cpu"
        packages = {
            self._sysfs.optional_int(cpu_dir / name / "topology/physical_package_id")
            for _, name in numbered_entries(list_names(cpu_dir) or [], "cpu")
        }
        packages.discard(None)
        return len(packages) or None

    def _numa_nodes(self) -> tuple[NumaNode, ...]:
        node_dir = self.context.sysfs_root / "devices/system/node"
        names = list_names(node_dir)
        if names is None:
            self._log.problem("numa", logging.DEBUG, "no NUMA layout in sysfs", path=str(node_dir))
            return ()
        return tuple(
            NumaNode(
                node=number,
                cpus=self._node_file(node_dir / name / "cpulist", parse_cpulist),
                memory_total_bytes=self._node_file(
                    node_dir / name / "meminfo", partial(parse_node_mem_total, node=number)
                ),
                distances=self._node_file(node_dir / name / "distance", parse_distances),
            )
            for number, name in numbered_entries(names, "node")
        )

    def _node_file(self, path: Path, parse: Callable[[str], T]) -> T | None:
        text = self._sysfs.optional_text(path)
        if text is None:
            return None
        try:
            value = parse(text)
        except ValueError as exc:
            self._log.problem(
                str(path),
                logging.WARNING,
                "malformed NUMA file, skipped",
                path=str(path),
                error=str(exc),
                content=text[:120],
            )
            return None
        self._log.recovered(str(path), "NUMA file well-formed again", path=str(path))
        return value

    @classmethod
    def summarize(cls, data: CpuInventory) -> list[str]:
        cpu = data.processor
        lines = [
            f"model        {cpu.model or 'unknown'} ({cpu.vendor or 'unknown vendor'}), "
            f"{cpu.arch or 'unknown arch'}" + (f" {cpu.bits}-bit" if cpu.bits else ""),
            f"topology     {_count(data.sockets, 'socket')}, {_count(data.cores, 'core')}, "
            f"{_count(data.threads, 'thread')}",
            f"frequency    {format_number(cpu.advertised_frequency_mhz, 0, ' MHz')} advertised, "
            f"{format_number(cpu.actual_frequency_mhz, 0, ' MHz')} actual, "
            + _frequency_range(data.min_frequency_mhz, data.max_frequency_mhz),
            f"cache        L2 {format_bytes(cpu.l2_cache_bytes)}, "
            f"L3 {format_bytes(cpu.l3_cache_bytes)}",
            f"memory       {format_bytes(data.memory_total_bytes)}",
        ]
        lines += [_numa_line(node) for node in data.numa_nodes] or ["numa         no layout"]
        lines.append(f"flags        {_features(data.features)}")
        lines.append(f"host         {data.hostname}, kernel {data.kernel_release}")
        return lines


def _count(value: int | None, noun: str) -> str:
    return f"? {noun}s" if value is None else f"{value} {noun}{'' if value == 1 else 's'}"


def _frequency_range(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "no cpufreq limits"
    return f"range {format_number(low, 0)}-{format_number(high, 0)} MHz"


def _numa_line(node: NumaNode) -> str:
    cpus = "?" if node.cpus is None else (format_cpulist(node.cpus) or "none")
    distances = "?" if node.distances is None else " ".join(map(str, node.distances))
    return (
        f"numa node{node.node:<4}CPUs {cpus}, {format_bytes(node.memory_total_bytes)}, "
        f"distances {distances}"
    )


def _features(features: CpuFeatures) -> str:
    def word(value: bool | None) -> str:
        return "?" if value is None else ("yes" if value else "no")

    return (
        f"virtualization (vmx/svm) {word(features.virtualization)}, "
        f"avx2 {word(features.avx2)}, avx512f {word(features.avx512f)}, "
        f"aes {word(features.aes)}, sse4_2 {word(features.sse4_2)}"
    )


__all__ = [
    "CpuFeatures",
    "CpuInfoCollector",
    "CpuInfoSettings",
    "CpuInventory",
    "ProcessorInfo",
    "cpu_features",
    "parse_cache_size",
    "parse_hz",
    "parse_py_cpuinfo",
    "run_py_cpuinfo",
]
