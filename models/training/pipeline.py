"""The steps every model goes through before it ships.

load -> :func:`validate` (schema columns, minimum samples, time-ordered split with no
overlap: the test period starts after the last training row, so no future data leaks
into training) -> train -> evaluate on the held-out later period -> :func:`register`
only if it beats the current model on that same held-out data -> export (see
:mod:`novacron.models.training.export`) with a model card.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from novacron.models.card import ModelCard
from novacron.models.schema import Schema

log = logging.getLogger(__name__)


class DataValidationError(ValueError):
    """Training data that must not be trained on (wrong columns, too small, leaky split)."""


@dataclass(frozen=True)
class Dataset:
    """Feature rows in schema order, with their time and the subject they belong to."""

    schema: Schema
    x: npt.NDArray[np.float64]  # (n, features); NaN allowed (filled before training)
    y: npt.NDArray[np.int_]  # (n,) 0/1 labels (anomaly sets may be all 0)
    time: npt.NDArray[np.float64]  # (n,) unix seconds of each row
    subject: npt.NDArray[np.str_]  # (n,) node / disk serial / series id

    def __len__(self) -> int:
        return len(self.y)

    def rows(self, mask: npt.NDArray[np.bool_]) -> Dataset:
        return Dataset(self.schema, self.x[mask], self.y[mask], self.time[mask], self.subject[mask])

    def filled(self) -> npt.NDArray[np.float32]:
        """Model input: NaN -> each feature's neutral fill, float32 as ONNX sees it."""
        fills = np.asarray(self.schema.fills())
        return np.where(np.isnan(self.x), fills, self.x).astype(np.float32)


@dataclass(frozen=True)
class Split:
    train: Dataset
    test: Dataset
    cutoff_time: float  # train rows are < cutoff, test rows are >= cutoff


def time_split(data: Dataset, test_fraction: float = 0.3, gap_seconds: float = 0.0) -> Split:
    """Train on the earlier period, test on the later one (never random rows).

    ``gap_seconds`` drops training rows whose label horizon reaches into the test
    period (a row labelled "fails within 7 days" looks 7 days ahead).
    """
    times = np.sort(np.unique(data.time))
    cutoff = float(times[int(len(times) * (1.0 - test_fraction))])
    train = data.rows(data.time < cutoff - gap_seconds)
    test = data.rows(data.time >= cutoff)
    return Split(train, test, cutoff)


def validate(
    split: Split,
    *,
    min_train_rows: int = 100,
    min_test_rows: int = 50,
    min_positive: int = 5,
    require_positives: bool = True,
) -> None:
    """Refuse data that would give a meaningless or leaky model."""
    for part, name in ((split.train, "train"), (split.test, "test")):
        if part.x.ndim != 2 or part.x.shape[1] != len(part.schema.features):
            raise DataValidationError(
                f"{name}: expected {len(part.schema.features)} feature columns "
                f"({part.schema.version_tag}), got shape {part.x.shape}"
            )
        if np.isinf(part.x).any():
            raise DataValidationError(f"{name}: infinite feature values")
    if len(split.train) < min_train_rows or len(split.test) < min_test_rows:
        raise DataValidationError(
            f"too few rows: train {len(split.train)} (< {min_train_rows}?) "
            f"test {len(split.test)} (< {min_test_rows}?)"
        )
    if len(split.train) and len(split.test) and split.train.time.max() >= split.test.time.min():
        raise DataValidationError("training rows overlap the test period (time leakage)")
    if require_positives:
        for part, name in ((split.train, "train"), (split.test, "test")):
            if int(part.y.sum()) < min_positive:
                raise DataValidationError(f"{name}: only {int(part.y.sum())} positive rows")


def register(
    candidate: ModelCard,
    candidate_score: float,
    current: Path | None,
    score_current: Callable[[Path], float],
    *,
    higher_is_better: bool = True,
) -> bool:
    """True if the candidate should replace the current model.

    ``score_current`` evaluates the current model (its card path) on the *same* held-out
    data the candidate was scored on; a missing or unloadable current model loses.
    """
    if current is None or not current.exists():
        log.info("no current model: registering", extra={"model": candidate.name})
        return True
    try:
        current_score = score_current(current)
    except Exception as exc:
        log.warning(
            "current model cannot be evaluated: replacing it",
            extra={"model": candidate.name, "error": str(exc)},
        )
        return True
    better = (
        candidate_score > current_score if higher_is_better else candidate_score < current_score
    )
    log.info(
        "candidate %s current model",
        "beats" if better else "does not beat",
        extra={"model": candidate.name, "candidate": candidate_score, "current": current_score},
    )
    return better
