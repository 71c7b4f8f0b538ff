"""GPU capacity: free GPUs and the model asked for for GPU VMs; GPU hosts kept free of
CPU-only VMs.

A CPU-only VM on a GPU host takes vCPUs and memory the host's GPUs need to be usable by
GPU VMs, so for requests without GPUs the free GPUs of a host count against it.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import free, groups, zeros

EXACT_MATCH = 1.0
FAMILY_MATCH = 0.5  # one model name contains the other ("A100" and "A100-SXM4-80GB")


def model_match(wanted: str, offered: str) -> float:
    """How well a host's GPU product ``offered`` matches the requested ``wanted``."""
    wanted, offered = wanted.strip().lower(), offered.strip().lower()
    if not offered:
        return 0.0
    if offered == wanted:
        return EXACT_MATCH
    if wanted in offered or offered in wanted:
        return FAMILY_MATCH
    return 0.0


@WEIGHERS.register("gpu", order=50)
class GpuWeigher(Weigher):
    """Free GPUs and model match for GPU VMs; GPU preservation for the others."""

    factors = (
        Factor(
            factor_id="free_gpus",
            name="Free GPUs",
            category=Category.RESOURCE,
            unit="gpus",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="allocation",
            description="GPUs not yet allocated (GPU VMs only; the same on every host otherwise)",
            higher_is_better=True,
            objective="spread",
        ),
        Factor(
            factor_id="gpu_model_match",
            name="GPU model match",
            category=Category.PERFORMANCE,
            unit="score",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="inventory:gpu_model + request",
            description=(
                "1 when the host's GPU product is exactly the one requested, 0.5 for the same "
                "family (one name contains the other), else 0 (GPU VMs naming a model only)"
            ),
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="gpu_preservation",
            name="GPUs a CPU-only VM would crowd",
            category=Category.RESOURCE,
            unit="gpus",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="allocation + request",
            description=(
                "free GPUs on the host when the VM asks for none: its vCPUs and memory would "
                "be missing for future GPU VMs (the same on every host for GPU VMs)"
            ),
            higher_is_better=False,
            objective="energy",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        free_gpus = free(hosts, self.settings, "gpus")
        if request.gpus == 0:
            return {
                "free_gpus": zeros(hosts),
                "gpu_model_match": zeros(hosts),
                "gpu_preservation": free_gpus,
            }
        if request.gpu_model:
            models = groups(hosts, "gpu_model")
            match = models.lookup(
                {offered: model_match(request.gpu_model, offered) for offered in models.values},
                0.0,
            )
        else:
            match = zeros(hosts)
        return {"free_gpus": free_gpus, "gpu_model_match": match, "gpu_preservation": zeros(hosts)}
