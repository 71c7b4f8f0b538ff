"""Feature windows for everything on one node: the node itself, each VM, each disk.

:class:`NodeFeatures` feeds every cycle's signals into one
:class:`~novacron.models.windows.FeatureWindows` per subject (NODE schema for the node,
VM schema per VM UUID, DISK schema per disk key), creating windows for new VMs and
disks and dropping those not seen for longer than their schema's longest window, so
memory is bounded by what the node runs, not by its history of VMs. A hard cap per
scope (least recently seen dropped first) bounds it even under extreme churn.

:meth:`~NodeFeatures.snapshot` gives the matrices the models score: the node row and
one row per VM and disk seen in the latest cycle.

:meth:`~NodeFeatures.save` and :meth:`~NodeFeatures.restore` persist the windows (see
:mod:`.state_file`), so a restarted agent has its last day (a week for disks) of history
instead of being blind. Restoring never fails the agent: an unreadable file, another
schema or state older than the longest window is logged and the windows start empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from novacron.agent.features.signals import SampleSignals, SignalCarry, sample_signals
from novacron.agent.features.state_file import StateFileError, read_state, write_state
from novacron.agent.sample import NodeSample
from novacron.models.schema import DISK, NODE, VM, Schema
from novacron.models.windows import FeatureWindows
from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger(__name__)

Scope = Literal["node", "vm", "disk"]
SCHEMAS: dict[Scope, Schema] = {"node": NODE, "vm": VM, "disk": DISK}
STATE_FILE_NAME = "features.npz"
DEFAULT_MAX_VMS = 1024
DEFAULT_MAX_DISKS = 256
MIN_SAMPLE_SPACING_SECONDS = 5.0
# A state saved this far in the future means the clock went back: the windows would
# refuse every new sample until the clock caught up, so such a state is not restored.
FUTURE_TOLERANCE_SECONDS = 60.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FeatureMatrix:
    """One row per subject in the schema's feature order; NaN = no data."""

    schema: Schema
    subjects: tuple[str, ...]  # node id, VM UUIDs or disk keys
    labels: tuple[str, ...]  # for people: node id, VM name, device
    features: FloatArray  # shape (len(subjects), len(schema.features))

    def __len__(self) -> int:
        return len(self.subjects)

    def model_input(self) -> npt.NDArray[np.float32]:
        """What a model sees: NaN replaced by each feature's neutral fill, float32."""
        fills = _fills(self.schema)
        return np.where(np.isnan(self.features), fills, self.features).astype(np.float32)


_FILLS: dict[str, tuple[Schema, FloatArray]] = {}


def _fills(schema: Schema) -> FloatArray:
    """``schema.fills()`` as an array, built once per schema (scoring runs every cycle)."""
    cached = _FILLS.get(schema.version_tag)
    if cached is None or cached[0] is not schema:
        cached = _FILLS[schema.version_tag] = (schema, np.asarray(schema.fills(), dtype=float))
    return cached[1]


@dataclass(frozen=True)
class FeatureSnapshot:
    timestamp_seconds: float
    node: FeatureMatrix  # exactly one row
    vms: FeatureMatrix
    disks: FeatureMatrix


class _Subject:
    __slots__ = ("label", "last_seen_seconds", "windows")

    def __init__(self, windows: FeatureWindows, label: str, last_seen_seconds: float) -> None:
        self.windows = windows
        self.label = label
        self.last_seen_seconds = last_seen_seconds


class NodeFeatures:
    def __init__(
        self,
        node_id: str,
        *,
        interval_hint_seconds: float = 10.0,
        max_vms: int = DEFAULT_MAX_VMS,
        max_disks: int = DEFAULT_MAX_DISKS,
    ) -> None:
        self.node_id = node_id
        # Windows are sized for one sample per interval; a faster loop (a 0.1 s debug
        # run) would size them for millions of rows, so samples closer together than
        # MIN_SAMPLE_SPACING_SECONDS are not added to the windows (a 15-minute window
        # stays 15 minutes, at that resolution; counters lose nothing).
        self.interval_hint_seconds = max(interval_hint_seconds, MIN_SAMPLE_SPACING_SECONDS)
        self._limits: dict[Scope, int] = {"node": 1, "vm": max_vms, "disk": max_disks}
        self._subjects: dict[Scope, dict[str, _Subject]] = {"node": {}, "vm": {}, "disk": {}}
        self._current: dict[Scope, tuple[str, ...]] = {"node": (), "vm": (), "disk": ()}
        self._carry = SignalCarry()
        self._last_update_seconds: float | None = None
        self._log = LogOnce(log)

    # -- feeding -------------------------------------------------------------------

    def update(self, sample: NodeSample) -> SampleSignals:
        """Add one cycle to every subject's windows; returns the cycle's signals.

        A sample less than MIN_SAMPLE_SPACING_SECONDS after the last one added only
        moves the signal carry on (XID totals, VM CPU times); the windows and the
        snapshot stay as they were.
        """
        signals, self._carry = sample_signals(sample, self._carry)
        now = sample.timestamp_seconds
        last = self._last_update_seconds
        if last is not None and 0 <= now - last < MIN_SAMPLE_SPACING_SECONDS:
            return signals
        self._add("node", {self.node_id: (signals.node, self.node_id)}, now)
        self._add("vm", {k: (v, signals.vm_names.get(k, k)) for k, v in signals.vms.items()}, now)
        self._add(
            "disk", {k: (v, signals.disk_devices.get(k, k)) for k, v in signals.disks.items()}, now
        )
        for scope in ("vm", "disk"):
            self._expire(scope, now)
        # A sample from before the latest one (the clock went back) adds nothing to the
        # windows; features stay at the latest time they have data for.
        self._last_update_seconds = max(now, self._last_update_seconds or now)
        return signals

    def _add(
        self, scope: Scope, rows: dict[str, tuple[dict[str, float | None], str]], now: float
    ) -> None:
        subjects = self._subjects[scope]
        for key, (values, label) in rows.items():
            subject = subjects.get(key)
            if subject is None:
                subject = subjects[key] = _Subject(self._new_windows(scope), label, now)
            if not subject.windows.add(now, values):
                self._log.problem(
                    f"stale:{scope}",
                    logging.WARNING,
                    "sample not newer than the last one in the windows (clock went back?); skipped",
                    scope=scope,
                    subject=key,
                    timestamp_seconds=now,
                )
            subject.label = label
            subject.last_seen_seconds = now
        self._current[scope] = tuple(rows)

    def _expire(self, scope: Scope, now: float) -> None:
        """Drop subjects unseen for longer than their longest window; then enforce the cap."""
        subjects = self._subjects[scope]
        horizon = SCHEMAS[scope].longest_window_seconds
        for key in [k for k, s in subjects.items() if now - s.last_seen_seconds > horizon]:
            del subjects[key]
        excess = len(subjects) - self._limits[scope]
        if excess > 0:
            oldest = sorted(subjects, key=lambda k: subjects[k].last_seen_seconds)[:excess]
            for key in oldest:
                del subjects[key]
            self._log.problem(
                f"cap:{scope}",
                logging.WARNING,
                "too many subjects; dropped the least recently seen windows",
                scope=scope,
                limit=self._limits[scope],
            )

    def _new_windows(self, scope: Scope) -> FeatureWindows:
        return FeatureWindows(SCHEMAS[scope], interval_hint_seconds=self.interval_hint_seconds)

    # -- reading -------------------------------------------------------------------

    def subject_count(self, scope: Scope) -> int:
        """Windows held for ``scope`` (seen this cycle or recently)."""
        return len(self._subjects[scope])

    def snapshot(self) -> FeatureSnapshot:
        """Feature matrices at the latest update, for the subjects seen in it."""
        now = self._last_update_seconds
        if now is None:
            raise RuntimeError("snapshot() before the first update()")
        node = self._matrix("node", now)
        if not len(node):  # the node row always exists, even with no signal at all
            node = FeatureMatrix(
                NODE, (self.node_id,), (self.node_id,), np.full((1, len(NODE.features)), np.nan)
            )
        return FeatureSnapshot(now, node, self._matrix("vm", now), self._matrix("disk", now))

    def _matrix(self, scope: Scope, now: float) -> FeatureMatrix:
        schema = SCHEMAS[scope]
        keys = tuple(k for k in self._current[scope] if k in self._subjects[scope])
        subjects = [self._subjects[scope][k] for k in keys]
        rows = [s.windows.features(now) for s in subjects]
        features = np.vstack(rows) if rows else np.empty((0, len(schema.features)))
        return FeatureMatrix(schema, keys, tuple(s.label for s in subjects), features)

    # -- persistence ---------------------------------------------------------------

    def save(self, path: Path, now: float) -> bool:
        """Write every window to ``path`` atomically; False (logged once) on failure."""
        meta_subjects: list[dict[str, Any]] = []
        states = []
        for scope, subjects in self._subjects.items():
            for key, subject in subjects.items():
                meta_subjects.append(
                    {
                        "scope": scope,
                        "key": key,
                        "label": subject.label,
                        "last_seen_seconds": subject.last_seen_seconds,
                    }
                )
                states.append(dict(subject.windows.state()))
        meta = {
            "saved_at_seconds": now,
            "node_id": self.node_id,
            "schemas": {scope: schema.hash for scope, schema in SCHEMAS.items()},
            "subjects": meta_subjects,
            "carry": self._carry.to_json_dict(),
        }
        try:
            write_state(path, meta, states)
        except OSError as exc:
            self._log.problem(
                "save", logging.ERROR, "cannot save feature windows", path=str(path), error=str(exc)
            )
            return False
        self._log.recovered("save", "feature windows saved again", path=str(path))
        return True

    def restore(self, path: Path, now: float) -> bool:
        """Load windows saved by :meth:`save`; False (and empty windows) if unusable."""
        try:
            meta, states = read_state(path)
            restored, carry = self._restored(meta, states, now)
        except FileNotFoundError:
            log.debug("no saved feature windows yet", extra={"path": str(path)})
            return False
        except (StateFileError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning(
                "saved feature windows are unusable; starting with empty windows",
                extra={"path": str(path), "error": f"{type(exc).__name__}: {exc}"},
            )
            return False
        self._subjects = restored
        self._carry = carry
        log.info(
            "feature windows restored",
            extra={
                "path": str(path),
                "saved_at_seconds": meta["saved_at_seconds"],
                **{f"{scope}_subjects": len(s) for scope, s in restored.items()},
            },
        )
        return any(restored.values())

    def _restored(
        self, meta: dict[str, Any], states: list[dict[str, Any]], now: float
    ) -> tuple[dict[Scope, dict[str, _Subject]], SignalCarry]:
        """New subjects from a state file; raises on anything malformed (nothing half-set)."""
        saved_at = float(meta["saved_at_seconds"])
        if saved_at > now + FUTURE_TOLERANCE_SECONDS:
            raise StateFileError(f"saved in the future ({saved_at:.0f} > now {now:.0f})")
        usable = self._usable_scopes(meta, now - saved_at)
        restored: dict[Scope, dict[str, _Subject]] = {"node": {}, "vm": {}, "disk": {}}
        for entry, state in zip(meta["subjects"], states, strict=True):
            scope = entry["scope"]
            if scope not in SCHEMAS:
                raise StateFileError(f"unknown scope {scope!r}")
            last_seen = float(entry["last_seen_seconds"])
            if scope not in usable or now - last_seen > SCHEMAS[scope].longest_window_seconds:
                continue
            windows = self._new_windows(scope)
            windows.restore(state)
            restored[scope][str(entry["key"])] = _Subject(windows, str(entry["label"]), last_seen)
        if list(restored["node"]) not in ([], [self.node_id]):
            raise StateFileError(f"state is for node {list(restored['node'])}, not {self.node_id}")
        return restored, SignalCarry.from_json_dict(meta.get("carry", {}))

    def _usable_scopes(self, meta: dict[str, Any], age_seconds: float) -> set[Scope]:
        usable: set[Scope] = set()
        saved_hashes = meta["schemas"]
        for scope, schema in SCHEMAS.items():
            if saved_hashes.get(scope) != schema.hash:
                log.warning(
                    "saved feature windows are for another schema; they start empty",
                    extra={"scope": scope, "schema": schema.version_tag},
                )
            elif age_seconds > schema.longest_window_seconds:
                log.info(
                    "saved feature windows are older than their longest window; discarded",
                    extra={"scope": scope, "age_seconds": round(age_seconds)},
                )
            else:
                usable.add(scope)
        return usable
