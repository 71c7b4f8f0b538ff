"""Enough free GPUs of the requested model."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import BoolArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest


def gpu_model_matches(host_models: npt.NDArray[np.str_], wanted: str) -> BoolArray:
    """Hosts whose GPU product name contains ``wanted``, ignoring case.

    Schedulers ask for "H100" or "A100-SXM4-80GB"; NVML reports "NVIDIA H100 80GB HBM3".
    A fleet has a handful of distinct models, so the match runs on those and the rows
    are compared by equality (string functions over every row cost milliseconds).
    """
    lowered = wanted.lower()
    models = set(host_models.tolist())
    return np.isin(host_models, [m for m in models if m and lowered in m.lower()])


@FILTERS.register("gpu", order=45)
class GpuFilter(Filter):
    """GPUs are passed through whole and never overcommitted; only GPU VMs are checked."""

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        if request.gpus == 0:
            return ()
        free = hosts.free("gpus")
        rejections = [Rejection("not enough free GPUs", ~(free >= request.gpus))]
        if request.gpu_model:
            rejections.append(
                Rejection(
                    f"GPU model is not {request.gpu_model}",
                    ~gpu_model_matches(hosts.texts["gpu_model"], request.gpu_model),
                )
            )
        return tuple(rejections)
