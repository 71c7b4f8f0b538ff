"""Read one GPU through NVML, every field on its own.

NVML answers per call, and which calls a GPU supports depends on its generation, board
and driver: a consumer card has no ECC, an A100 has remapped rows but no retired pages,
a vGPU hides the PCIe counters. So each field is one guarded call; ``NotSupported``
gives ``None`` quietly, any other error gives ``None`` and one log line, and
``GpuIsLost`` marks the whole GPU as lost (it fell off the bus: the other fields would
be stale or absent anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from novacron.agent.collectors._nvml_model import (
    GpuReading,
    as_text,
    decode_clock_reasons,
    milliwatts_to_watts,
)
from novacron.protos.runtime.jsonlog import LogOnce

T = TypeVar("T")

log = logging.getLogger("novacron.agent.collectors.nvml")
_log_once = LogOnce(log)

# Newer name first: nvmlDeviceGetCurrentClocksThrottleReasons is deprecated since
# NVML 12.2 but the only one older drivers have.
_CLOCK_REASON_CALLS = (
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
)


class _Missing(Exception):
    """This pynvml or driver has no such function (older versions)."""


class GpuCalls:
    """Guarded NVML calls on one device handle, remembering how the GPU answered."""

    def __init__(self, nvml: Any, handle: Any, gpu: str) -> None:
        self._nvml = nvml
        self._handle = handle
        self._gpu = gpu
        self.answered = 0  # calls that reached the GPU (NotSupported counts: it answered)
        self.lost: str | None = None  # NVMLError_GpuIsLost text, once seen
        self.last_error: str | None = None

    def value(self, convert: Callable[[Any], T], function: str, *args: Any) -> T | None:
        """``convert(function(handle, *args))``, or ``None`` if the call or conversion fails."""
        try:
            return self._value(convert, function, *args)
        except _Missing:
            return None

    def _value(self, convert: Callable[[Any], T], function: str, *args: Any) -> T | None:
        """As :meth:`value`, but raises :class:`_Missing` when there is no such call."""
        nvml = self._nvml
        fn = getattr(nvml, function, None)
        if fn is None:
            raise _Missing(function)
        try:
            raw = fn(self._handle, *args)
        except nvml.NVMLError as exc:
            if isinstance(exc, nvml.NVMLError_FunctionNotFound):
                raise _Missing(function) from exc
            self._failed(function, exc)
            return None
        self.answered += 1
        try:
            return convert(raw)
        except (TypeError, ValueError, AttributeError, LookupError) as exc:
            self._problem(function, f"answer not understood: {type(exc).__name__}: {exc}")
            return None

    def _failed(self, function: str, exc: Exception) -> None:
        nvml = self._nvml
        if isinstance(exc, nvml.NVMLError_NotSupported):
            self.answered += 1
        elif isinstance(exc, nvml.NVMLError_GpuIsLost):
            self.lost = str(exc)
        else:
            self.last_error = f"{function}: {exc}"
            self._problem(function, f"{type(exc).__name__}: {exc}")

    def _problem(self, function: str, error: str) -> None:
        _log_once.problem(
            f"{self._gpu}:{function}",
            logging.WARNING,
            "NVML call failed; field skipped",
            gpu=self._gpu,
            call=function,
            error=error,
        )

    def clock_reasons(self) -> tuple[str, ...] | None:
        """Decoded clock limiters, from the newest call this pynvml and driver have."""
        for function in _CLOCK_REASON_CALLS:
            try:
                return self._value(_decode_mask, function)
            except _Missing:
                continue
        return None


def read_gpu(
    nvml: Any, handle: Any, index: int, uuid: str, xids: tuple[int, ...]
) -> tuple[GpuReading, GpuCalls]:
    """Every field of one GPU, and how the GPU answered (lost? answered at all?)."""
    calls = GpuCalls(nvml, handle, uuid)
    return _reading(nvml, calls, index, uuid, xids), calls


def _reading(
    nvml: Any, calls: GpuCalls, index: int, uuid: str, xids: tuple[int, ...]
) -> GpuReading:
    utilisation = calls.value(_utilisation, "nvmlDeviceGetUtilizationRates")
    memory = calls.value(_memory, "nvmlDeviceGetMemoryInfo")
    remapped = calls.value(_remapped_rows, "nvmlDeviceGetRemappedRows")
    corrected = nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    uncorrected = nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    volatile, aggregate = nvml.NVML_VOLATILE_ECC, nvml.NVML_AGGREGATE_ECC
    ecc, pages = "nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetRetiredPages"
    single_bit = nvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
    double_bit = nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR
    return GpuReading(
        index=index,
        uuid=uuid,
        name=calls.value(as_text, "nvmlDeviceGetName"),
        pci_bus_id=calls.value(lambda pci: as_text(pci.busId), "nvmlDeviceGetPciInfo"),
        temperature_celsius=calls.value(
            float, "nvmlDeviceGetTemperature", nvml.NVML_TEMPERATURE_GPU
        ),
        power_watts=calls.value(milliwatts_to_watts, "nvmlDeviceGetPowerUsage"),
        power_limit_watts=calls.value(milliwatts_to_watts, "nvmlDeviceGetEnforcedPowerLimit"),
        gpu_utilisation_percent=utilisation[0] if utilisation else None,
        memory_utilisation_percent=utilisation[1] if utilisation else None,
        memory_used_bytes=memory[0] if memory else None,
        memory_total_bytes=memory[1] if memory else None,
        ecc_volatile_corrected=calls.value(int, ecc, corrected, volatile),
        ecc_volatile_uncorrected=calls.value(int, ecc, uncorrected, volatile),
        ecc_aggregate_corrected=calls.value(int, ecc, corrected, aggregate),
        ecc_aggregate_uncorrected=calls.value(int, ecc, uncorrected, aggregate),
        retired_pages_single_bit=calls.value(len, pages, single_bit),
        retired_pages_double_bit=calls.value(len, pages, double_bit),
        retired_pages_pending=calls.value(bool, "nvmlDeviceGetRetiredPagesPendingStatus"),
        remapped_rows_correctable=remapped[0] if remapped else None,
        remapped_rows_uncorrectable=remapped[1] if remapped else None,
        remapped_rows_pending=remapped[2] if remapped else None,
        remapped_rows_failure=remapped[3] if remapped else None,
        pcie_replay_count=calls.value(int, "nvmlDeviceGetPcieReplayCounter"),
        clock_throttle_reasons=calls.clock_reasons(),
        xid_errors=xids,
    )


def _utilisation(rates: Any) -> tuple[float, float]:
    return float(rates.gpu), float(rates.memory)


def _memory(info: Any) -> tuple[int, int]:
    return int(info.used), int(info.total)


def _remapped_rows(rows: Any) -> tuple[int, int, bool, bool]:
    correctable, uncorrectable, pending, failure = rows
    return int(correctable), int(uncorrectable), bool(pending), bool(failure)


def _decode_mask(mask: Any) -> tuple[str, ...]:
    return decode_clock_reasons(int(mask))
