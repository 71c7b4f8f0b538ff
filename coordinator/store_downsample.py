"""Downsampling of old frames: one row of per-feature means per node, schema and time step.

A mean over a step ignores NaN ("no data") values, so each row also keeps how many
values every feature's mean is made of (``counts``). That makes two partial rows of the
same step mergeable exactly -- the case of a frame that arrives after its step was
already folded -- and tells a reader how much data a mean stands on.

Pure functions over rows and arrays; the store does the I/O.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np
import numpy.typing as npt

from novacron.coordinator.store import FEATURE_DTYPE

log = logging.getLogger(__name__)

COUNT_DTYPE = np.dtype("<u4")

# (schema_version, seq, timestamp_seconds, features blob, vm_count), as the store reads them.
RawRow = tuple[int, int, float, bytes, int]


@dataclass(frozen=True)
class Bucket:
    """The mean of one node's frames of one schema version in [start, start + step)."""

    schema_version: int
    bucket_start_seconds: float
    step_seconds: float
    frame_count: int
    first_seq: int
    last_seq: int
    means: npt.NDArray[np.float32]  # NaN where counts == 0
    counts: npt.NDArray[np.uint32]  # non-NaN values behind each mean
    vm_count_mean: float

    @property
    def key(self) -> tuple[int, float]:
        return (self.schema_version, self.bucket_start_seconds)

    def row(self) -> list[Any]:
        """Column values after ``node_id``, in ``frames_downsampled`` order."""
        return [
            self.schema_version,
            self.bucket_start_seconds,
            self.step_seconds,
            self.frame_count,
            self.first_seq,
            self.last_seq,
            self.means.astype(FEATURE_DTYPE).tobytes(),
            self.counts.astype(COUNT_DTYPE).tobytes(),
            self.vm_count_mean,
        ]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Bucket:
        """Inverse of :meth:`row`."""
        return cls(
            schema_version=int(row[0]),
            bucket_start_seconds=float(row[1]),
            step_seconds=float(row[2]),
            frame_count=int(row[3]),
            first_seq=int(row[4]),
            last_seq=int(row[5]),
            means=np.frombuffer(row[6], dtype=FEATURE_DTYPE).astype(np.float32),
            counts=np.frombuffer(row[7], dtype=COUNT_DTYPE).astype(np.uint32),
            vm_count_mean=float(row[8]),
        )


def bucket_start(timestamp_seconds: float, step_seconds: float) -> float:
    return math.floor(timestamp_seconds / step_seconds) * step_seconds


def downsample(rows: Sequence[RawRow], step_seconds: float) -> list[Bucket]:
    """One :class:`Bucket` per (schema version, step) present in ``rows``.

    A frame whose feature vector has another length than the rest of its step (it
    should have been rejected at ingest) still counts as a frame but adds no values.
    """

    def key(row: RawRow) -> tuple[int, float]:
        return (row[0], bucket_start(row[2], step_seconds))

    buckets = []
    for (schema_version, start), group in groupby(sorted(rows, key=key), key=key):
        members = list(group)
        width = _common_width(members)
        usable = [r[3] for r in members if len(r[3]) == width * FEATURE_DTYPE.itemsize]
        if len(usable) < len(members):
            log.warning(
                "frames with a feature vector of the wrong length left out of a downsampled mean",
                extra={"schema_version": schema_version, "skipped": len(members) - len(usable)},
            )
        values = np.frombuffer(b"".join(usable), dtype=FEATURE_DTYPE).reshape(len(usable), width)
        seqs = [r[1] for r in members]
        buckets.append(
            _bucket(
                schema_version,
                start,
                step_seconds,
                values,
                frame_count=len(members),
                first_seq=min(seqs),
                last_seq=max(seqs),
                vm_count_mean=sum(r[4] for r in members) / len(members),
            )
        )
    return buckets


def merge_buckets(old: Bucket, new: Bucket) -> Bucket:
    """The bucket both rows' frames would have made together (exact, via the counts)."""
    if old.means.shape != new.means.shape:
        log.warning(
            "downsampled rows of one step disagree on the feature count; keeping the larger",
            extra={"schema_version": old.schema_version, "bucket": old.bucket_start_seconds},
        )
        return old if old.frame_count >= new.frame_count else new
    counts = old.counts.astype(np.float64) + new.counts
    sums = (
        np.nan_to_num(old.means.astype(np.float64)) * old.counts
        + np.nan_to_num(new.means.astype(np.float64)) * new.counts
    )
    frames = old.frame_count + new.frame_count
    return Bucket(
        schema_version=old.schema_version,
        bucket_start_seconds=old.bucket_start_seconds,
        step_seconds=old.step_seconds,
        frame_count=frames,
        first_seq=min(old.first_seq, new.first_seq),
        last_seq=max(old.last_seq, new.last_seq),
        means=_divide(sums, counts),
        counts=counts.astype(np.uint32),
        vm_count_mean=(old.vm_count_mean * old.frame_count + new.vm_count_mean * new.frame_count)
        / frames,
    )


def _bucket(
    schema_version: int,
    start: float,
    step_seconds: float,
    values: npt.NDArray[np.float32],
    *,
    frame_count: int,
    first_seq: int,
    last_seq: int,
    vm_count_mean: float,
) -> Bucket:
    present = ~np.isnan(values)
    counts = present.sum(axis=0).astype(np.float64)
    sums = np.where(present, values.astype(np.float64), 0.0).sum(axis=0)
    return Bucket(
        schema_version=schema_version,
        bucket_start_seconds=start,
        step_seconds=step_seconds,
        frame_count=frame_count,
        first_seq=first_seq,
        last_seq=last_seq,
        means=_divide(sums, counts),
        counts=counts.astype(np.uint32),
        vm_count_mean=vm_count_mean,
    )


def _divide(
    sums: npt.NDArray[np.float64], counts: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    means = np.full(sums.shape, np.nan, dtype=np.float64)
    np.divide(sums, counts, out=means, where=counts > 0)
    return means.astype(np.float32)


def _common_width(rows: Sequence[RawRow]) -> int:
    """The most frequent feature count among ``rows`` (ties: the larger)."""
    widths = [len(r[3]) // FEATURE_DTYPE.itemsize for r in rows]
    return max(set(widths), key=lambda w: (widths.count(w), w))
