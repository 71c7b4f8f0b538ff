"""The feature-window state file: one ``.npz``, written atomically, read defensively.

Layout: a ``meta`` entry holding JSON (format, save time, schema hashes, the subjects
with their keys and last-seen times, the signal carry) and, per subject ``i``, the
arrays of its :meth:`FeatureWindows.state` as ``<i>.<name>``. Numbers stay numpy
arrays (no pickling: ``np.load(allow_pickle=False)`` cannot execute anything a
tampered file holds).

Writing goes to a temporary file in the same directory, is flushed to disk and then
renamed over the old file, so a crash or power cut leaves either the old state or the
new one, never half of each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

STATE_FORMAT = 1
META_KEY = "meta"

Arrays = dict[str, npt.NDArray[Any]]


class StateFileError(ValueError):
    """The state file exists but cannot be used (corrupt, another format)."""


def write_state(path: Path, meta: Mapping[str, Any], subjects: list[Arrays]) -> None:
    """Atomically replace ``path`` with ``meta`` and one array group per subject."""
    arrays: Arrays = {META_KEY: np.array(json.dumps({"format": STATE_FORMAT, **meta}))}
    for index, state in enumerate(subjects):
        for name, array in state.items():
            arrays[f"{index}.{name}"] = array
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_state(path: Path) -> tuple[dict[str, Any], list[Arrays]]:
    """``(meta, per-subject arrays)``; raises StateFileError for anything unusable.

    A missing file raises FileNotFoundError (a first start, not a problem).
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            entries = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile, numpy and OS errors all mean "unusable"
        raise StateFileError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    try:
        meta = json.loads(str(entries.pop(META_KEY)))
    except (KeyError, ValueError) as exc:
        raise StateFileError(f"{path}: no readable meta entry ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise StateFileError(f"{path}: unknown state format")
    count = len(meta.get("subjects", ()))
    subjects: list[Arrays] = [{} for _ in range(count)]
    for name, array in entries.items():
        index, _, field = name.partition(".")
        if not index.isdigit() or int(index) >= count or not field:
            raise StateFileError(f"{path}: unexpected entry {name!r}")
        subjects[int(index)][field] = array
    return meta, subjects
