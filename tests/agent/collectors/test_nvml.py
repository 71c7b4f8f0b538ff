"""The NVML collector through a fake ``pynvml`` (tests/fixtures/nvml/fake_pynvml.py).

The fake has real pynvml's names, constants, exception classes and return shapes
(checked against the installed nvidia-ml-py below), and is injected as
``sys.modules["pynvml"]``, which is exactly what the collector imports.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from novacron.agent.collectors._nvml_model import as_text, decode_clock_reasons
from novacron.agent.collectors.base import CollectorContext
from novacron.agent.collectors.nvml import NvmlCollector, NvmlSettings
from tests.fixtures.nvml import FAKE_SOURCE, install_fake_pynvml, load_fake_pynvml

T0 = 1_800_000_000.0
GPU0 = "GPU-5a3c1e0f-7b2d-4c9e-8f10-000000000000"
GPU1 = "GPU-5a3c1e0f-7b2d-4c9e-8f10-000000000001"
LOGGER = "novacron.agent.collectors.nvml"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_fake_pynvml(gpus=2, xid=31)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


@pytest.fixture
def collector(fake: ModuleType) -> Any:
    c = NvmlCollector(CollectorContext(), NvmlSettings())
    yield c
    c.close()


def test_two_gpus_every_field(collector: NvmlCollector, fake: ModuleType) -> None:
    readings = collector.collect(T0)
    assert readings.driver_version == "550.54.15"
    assert readings.error is None and readings.unavailable == ()
    a100, v100 = readings.gpus
    assert (a100.index, a100.uuid, a100.name) == (0, GPU0, "NVIDIA A100-SXM4-80GB")
    assert a100.pci_bus_id == "00000000:07:00.0"
    assert a100.temperature_celsius == 41.0
    assert a100.power_watts == pytest.approx(87.512)  # NVML reports milliwatts
    assert a100.power_limit_watts == 400.0
    assert (a100.gpu_utilisation_percent, a100.memory_utilisation_percent) == (37.0, 12.0)
    assert (a100.memory_used_bytes, a100.memory_total_bytes) == (10_737_418_240, 85_899_345_920)
    assert (a100.ecc_volatile_corrected, a100.ecc_volatile_uncorrected) == (3, 0)
    assert (a100.ecc_aggregate_corrected, a100.ecc_aggregate_uncorrected) == (120, 1)
    assert (a100.remapped_rows_correctable, a100.remapped_rows_uncorrectable) == (2, 0)
    assert (a100.remapped_rows_pending, a100.remapped_rows_failure) == (False, False)
    # Ampere has no page retirement: NotSupported gives None, nothing else is lost.
    assert a100.retired_pages_single_bit is None
    assert a100.retired_pages_double_bit is None
    assert a100.retired_pages_pending is None
    assert a100.pcie_replay_count == 5
    assert a100.clock_throttle_reasons == ("sw_power_cap", "sw_thermal_slowdown")
    assert a100.xid_errors == (31,)

    assert (v100.index, v100.uuid, v100.name) == (1, GPU1, "Tesla V100-SXM2-32GB")
    assert v100.power_watts is None  # unsupported on this GPU only
    assert v100.power_limit_watts == 400.0
    assert (v100.retired_pages_single_bit, v100.retired_pages_double_bit) == (2, 1)
    assert v100.retired_pages_pending is True
    assert v100.remapped_rows_correctable is None and v100.remapped_rows_failure is None
    assert v100.xid_errors == ()


def test_xids_are_reported_once_per_collection(
    collector: NvmlCollector, fake: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert collector.collect(T0).gpus[0].xid_errors == (31,)
    assert [g.xid_errors for g in collector.collect(T0 + 10).gpus] == [(), ()]
    fake.queue_xid(1, 48)
    fake.queue_xid(1, 63)
    assert [g.xid_errors for g in collector.collect(T0 + 20).gpus] == [(), (48, 63)]
    xid_logs = [(r.gpu, r.xid) for r in caplog.records if r.message == "GPU XID error"]  # type: ignore[attr-defined]
    assert xid_logs == [(GPU0, 31), (GPU1, 48), (GPU1, 63)]
    event_set = fake.LIBRARY.event_sets[0]
    assert len(fake.LIBRARY.event_sets) == 1  # registered once, not every cycle
    assert event_set.registrations == {0: fake.nvmlEventTypeXidCriticalError, 1: 8}


def test_unsupported_is_quiet_other_errors_logged_once(
    collector: NvmlCollector, fake: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    fake.GPUS[0].errors["nvmlDeviceGetTemperature"] = fake.NVML_ERROR_UNKNOWN
    first = collector.collect(T0)
    collector.collect(T0 + 10)
    assert first.gpus[0].temperature_celsius is None
    assert first.gpus[0].power_watts is not None  # the other fields are unaffected
    failures = [r for r in caplog.records if r.message == "NVML call failed; field skipped"]
    assert len(failures) == 1
    assert failures[0].gpu == GPU0  # type: ignore[attr-defined]
    assert failures[0].call == "nvmlDeviceGetTemperature"  # type: ignore[attr-defined]
    assert "NVMLError_Unknown" in failures[0].error  # type: ignore[attr-defined]
    assert not any("PowerUsage" in str(getattr(r, "call", "")) for r in caplog.records)


def test_garbage_answer_costs_only_its_field(
    collector: NvmlCollector,
    fake: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    monkeypatch.setattr(fake, "nvmlDeviceGetMemoryInfo", lambda handle, version=None: object())
    monkeypatch.setattr(fake, "nvmlDeviceGetPcieReplayCounter", lambda handle: "many")
    gpu = collector.collect(T0).gpus[0]
    assert gpu.memory_used_bytes is None and gpu.memory_total_bytes is None
    assert gpu.pcie_replay_count is None
    assert gpu.temperature_celsius == 41.0
    problems = {
        (r.call, r.error.split(":")[0])  # type: ignore[attr-defined]
        for r in caplog.records
        if r.message == "NVML call failed; field skipped"
    }
    assert ("nvmlDeviceGetMemoryInfo", "answer not understood") in problems
    assert ("nvmlDeviceGetPcieReplayCounter", "answer not understood") in problems


def test_no_library_is_no_data_and_init_is_retried(
    collector: NvmlCollector, fake: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    fake.LIBRARY.present = False
    for offset in (0, 10, 299):
        readings = collector.collect(T0 + offset)
        assert readings.gpus == () and readings.unavailable == ()
        assert readings.driver_version is None
        assert readings.error == "nvmlInit: NVML Shared Library Not Found"
    assert fake.LIBRARY.init_calls == 1
    problems = [r for r in caplog.records if r.message == "no NVIDIA driver; no GPU data"]
    assert len(problems) == 1 and problems[0].levelno == logging.DEBUG
    assert NvmlCollector.summarize(readings) == [
        "no NVIDIA GPU data (nvmlInit: NVML Shared Library Not Found)"
    ]

    fake.LIBRARY.present = True  # the driver was installed later
    readings = collector.collect(T0 + 300)
    assert fake.LIBRARY.init_calls == 2
    assert [g.uuid for g in readings.gpus] == [GPU0, GPU1]
    assert any(r.message == "NVML initialised" for r in caplog.records)


def test_driver_not_loaded_is_no_data(collector: NvmlCollector, fake: ModuleType) -> None:
    fake.LIBRARY.driver_loaded = False
    readings = collector.collect(T0)
    assert readings.gpus == () and readings.error == "nvmlInit: Driver Not Loaded"


def test_other_init_failure_is_a_warning(
    collector: NvmlCollector,
    fake: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    def no_permission() -> None:
        raise fake.NVMLError(fake.NVML_ERROR_NO_PERMISSION)

    monkeypatch.setattr(fake, "nvmlInit", no_permission)
    readings = collector.collect(T0)
    assert readings.gpus == () and readings.error == "nvmlInit: Insufficient Permissions"
    (record,) = [r for r in caplog.records if r.message == "nvmlInit failed"]
    assert record.levelno == logging.WARNING


def test_no_pynvml_module_is_no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    readings = NvmlCollector(CollectorContext(), NvmlSettings()).collect(T0)
    assert readings.gpus == () and readings.unavailable == ()
    assert readings.error is not None and readings.error.startswith("pynvml cannot be imported")


def test_lost_gpu_is_unavailable_with_its_xid(collector: NvmlCollector, fake: ModuleType) -> None:
    collector.collect(T0)
    fake.GPUS[1].lost = True
    fake.queue_xid(1, 79)  # "GPU has fallen off the bus"
    readings = collector.collect(T0 + 10)
    assert [g.uuid for g in readings.gpus] == [GPU0]
    (lost,) = readings.unavailable
    assert lost.device == GPU1
    assert lost.unavailable_since == T0 + 10
    assert lost.reason == "NVMLError_GpuIsLost: GPU is lost (XID 79)"

    fake.GPUS[1].lost = False  # reset by the operator
    assert collector.collect(T0 + 20).unavailable == ()


def test_gpu_whose_metric_calls_all_fail_is_unavailable(
    collector: NvmlCollector, fake: ModuleType
) -> None:
    names = [n for n in dir(fake) if n.startswith("nvmlDeviceGet") and n != "nvmlDeviceGetUUID"]
    fake.GPUS[0].errors = {n: fake.NVML_ERROR_UNKNOWN for n in names}
    fake.GPUS[0].unsupported = set()  # "not supported" would still be an answer
    readings = collector.collect(T0)
    assert [g.uuid for g in readings.gpus] == [GPU1]
    (failed,) = readings.unavailable
    assert failed.device == GPU0
    assert failed.reason.startswith("no NVML call answered: ")


def test_lost_by_all_calls_reporting_gpu_is_lost(
    collector: NvmlCollector, fake: ModuleType
) -> None:
    collector.collect(T0)
    fake.GPUS[0].errors = {"nvmlDeviceGetTemperature": fake.NVML_ERROR_GPU_IS_LOST}
    (lost,) = collector.collect(T0 + 10).unavailable
    assert (lost.device, lost.reason) == (GPU0, "GPU is lost: GPU is lost")


def test_gpu_that_disappears_from_enumeration(collector: NvmlCollector, fake: ModuleType) -> None:
    collector.collect(T0)
    del fake.GPUS[1]
    readings = collector.collect(T0 + 10)
    assert [g.uuid for g in readings.gpus] == [GPU0]
    assert [(u.device, u.reason) for u in readings.unavailable] == [(GPU1, "no longer discovered")]


def test_driver_unloaded_under_us_then_back(collector: NvmlCollector, fake: ModuleType) -> None:
    collector.collect(T0)
    fake.LIBRARY.driver_loaded = False
    gone = collector.collect(T0 + 10)
    assert gone.gpus == () and gone.driver_version is None
    assert gone.error == "nvmlDeviceGetCount: Driver Not Loaded"
    assert sorted(u.device for u in gone.unavailable) == [GPU0, GPU1]
    assert all(u.reason.startswith("NVML stopped answering") for u in gone.unavailable)
    assert fake.LIBRARY.refcount == 0  # shut down, to start over

    still_gone = collector.collect(T0 + 20)  # re-init fails (driver not loaded)
    assert [u.unavailable_since for u in still_gone.unavailable] == [T0 + 10, T0 + 10]
    fake.LIBRARY.driver_loaded = True
    back = collector.collect(T0 + 20 + 300)
    assert len(back.gpus) == 2 and back.unavailable == ()


def test_throttle_reasons_from_the_deprecated_call_on_old_pynvml(
    collector: NvmlCollector, fake: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(fake, "nvmlDeviceGetCurrentClocksEventReasons")
    fake.GPUS[0].clock_reasons = fake.nvmlClocksThrottleReasonHwSlowdown | 0x1000
    assert collector.collect(T0).gpus[0].clock_throttle_reasons == (
        "hw_slowdown",
        "unknown_0x1000",
    )


def test_close_shuts_nvml_down(fake: ModuleType) -> None:
    collector = NvmlCollector(CollectorContext(), NvmlSettings())
    collector.collect(T0)
    assert fake.LIBRARY.refcount == 1
    collector.close()
    assert fake.LIBRARY.refcount == 0
    assert fake.LIBRARY.event_sets[0].freed


def test_summary(collector: NvmlCollector) -> None:
    lines = NvmlCollector.summarize(collector.collect(T0))
    assert lines[0].startswith("GPU0 NVIDIA A100-SXM4-80GB 00000000:07:00.0  41 C  88 W/400 W")
    assert lines[0].endswith("throttle sw_power_cap,sw_thermal_slowdown  xid 31")
    assert "  -/400 W" in lines[1]


def test_decode_clock_reasons_and_text() -> None:
    assert decode_clock_reasons(0) == ()
    assert decode_clock_reasons(0x1 | 0x40 | 0x400) == (
        "gpu_idle",
        "hw_thermal_slowdown",
        "reliability",
    )
    assert as_text(b"00000000:3B:00.0\x00") == "00000000:3B:00.0"
    assert as_text("GPU-1") == "GPU-1"


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match=r"^init_retry_seconds: must be > 0"):
        NvmlSettings(init_retry_seconds=0)


def test_fake_matches_real_pynvml(fake: ModuleType) -> None:
    """Every name the fake shares with nvidia-ml-py has the same value or signature."""
    real = _real_pynvml()
    shared = [n for n in vars(fake) if not n.startswith("_") and hasattr(real, n)]
    assert len(shared) > 60
    for name in shared:
        mine, theirs = getattr(fake, name), getattr(real, name)
        if isinstance(mine, int):
            assert mine == theirs, name
        elif inspect.isfunction(mine) and name.startswith("nvml"):
            assert list(inspect.signature(mine).parameters) == list(
                inspect.signature(inspect.unwrap(theirs)).parameters
            ), name
    for name in vars(real):
        if name.startswith("NVMLError_"):
            assert issubclass(getattr(fake, name), fake.NVMLError), name
    assert isinstance(fake.NVMLError(fake.NVML_ERROR_NOT_SUPPORTED), fake.NVMLError_NotSupported)


def _real_pynvml() -> ModuleType:
    """The installed nvidia-ml-py module, loaded from its file (sys.modules has the fake)."""
    import importlib.util
    import sysconfig

    path = Path(sysconfig.get_paths()["purelib"]) / "pynvml.py"
    spec = importlib.util.spec_from_file_location("real_pynvml_for_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_pynvml_for_test"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["real_pynvml_for_test"]
    return module


def test_agent_process_with_installed_fake(tmp_path: Path) -> None:
    fake_dir = install_fake_pynvml(tmp_path / "fake", gpus=3)
    assert (fake_dir / "pynvml.py").read_text().startswith(FAKE_SOURCE.read_text())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fake_dir), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "novacron.agent.cli",
            "collect",
            "--once",
            "--json",
            "--collectors",
            "nvml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    data = json.loads(result.stdout)["nvml"]["data"]
    assert [g["uuid"][-1] for g in data["gpus"]] == ["0", "1", "2"]
    assert data["gpus"][0]["xid_errors"] == [31]
    assert data["gpus"][1]["power_watts"] is None
    assert data["gpus"][0]["power_watts"] == 87.512
