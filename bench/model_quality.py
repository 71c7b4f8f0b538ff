"""Model quality on held-out data, our shipped models beside a simple rule, one run.

* Disks: Backblaze Drive Stats, the later period the shipped model never saw
  (rows from the training split's cutoff on), drive-level P/R/F1 and lead time, row
  PR-AUC. Baseline: the classic operator rule "any reallocated, pending or offline
  uncorrectable sector" (SMART 5, 197, 198 > 0).
* Nodes: a freshly seeded simulated fleet (seed never used in training), failure
  within 30 min and 24 h: row P/R/F1, PR-AUC, false alarms per node-day, failures caught
  and lead time. Baseline: a threshold rule an operator would write (SMART failing or
  unavailable disk, uncorrectable ECC, under 5 degC to critical, GPU XID).
* Anomalies: NAB, the series the shipped detector was not tuned on: event-level and
  point-level F1 without point adjustment, point-adjusted F1 only beside them.
  Baseline: flag every point (which the event-level rule rewards).

    .venv/bin/python -m bench.model_quality [--nodes 40]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from novacron.models.card import bundled_card_path
from novacron.models.evaluation import disk_backblaze
from novacron.models.evaluation import nab as nab_eval
from novacron.models.evaluation.failure_metrics import failure_metrics
from novacron.models.runtime import OnnxModel
from novacron.models.schema import DISK, NODE
from novacron.models.training import disk_failure, node_failure
from novacron.models.training.datasets import backblaze
from novacron.models.training.simulator import SimConfig

NAB_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab"
FRESH_SEED = 90210


def column(schema_features: tuple[str, ...], rows: np.ndarray, name: str) -> np.ndarray:
    return rows[:, schema_features.index(name)]


def disks() -> list[str]:
    model = OnnxModel.load(bundled_card_path("disk-failure-7d"))
    data = backblaze.load(disk_failure.DEFAULT_DATA, model.card.horizons_seconds[0])
    cutoff = disk_failure.split(data).cutoff_time
    held = data.dataset.time >= cutoff
    rows = data.dataset.rows(held)
    failure_row = data.is_failure_row()[held]
    ours = disk_backblaze.score_rows(model, rows)
    x = rows.filled()
    names = DISK.feature_names
    rule = (
        (column(names, x, "reallocated_sectors_last_24h") > 0)
        | (column(names, x, "current_pending_sectors_last_24h") > 0)
        | (column(names, x, "offline_uncorrectable_last_24h") > 0)
    ).astype(float)
    out = []
    for label, score, threshold in (
        ("disk-failure-7d", ours, float(model.card.thresholds["alert"])),
        ("rule SMART 5/197/198>0", rule, 0.5),
    ):
        m = disk_backblaze.disk_metrics(rows, failure_row, score, threshold)
        d, r = m["drive_level"], m["row_level"]
        lead = d["lead_time_days"].get("median")
        out.append(
            f"{label:26} drives P {d['precision']:.2f} R {d['recall']:.2f} F1 {d['f1']:.2f}"
            f"  lead {lead if lead is not None else '-'} d  row PR-AUC {r['pr_auc'] or 0:.3f}"
        )
    return out


def node_rule(x: np.ndarray) -> np.ndarray:
    n = NODE.feature_names
    return (
        (column(n, x, "smart_failing_disks_last_1h") > 0)
        | (column(n, x, "smart_unavailable_disks_max_1h") > 0)
        | (column(n, x, "ecc_uncorrected_errors_increase_24h") > 0)
        | (column(n, x, "temp_margin_celsius_min_15m") < 5)
        | (column(n, x, "gpu_xid_events_increase_1h") > 0)
    ).astype(float)


def nodes(count: int) -> list[str]:
    fleet = node_failure.fleet_rows(
        SimConfig(nodes=count, days=3.0, seed=FRESH_SEED, failure_fraction=0.3), workers=2
    )
    out = []
    for name, horizon in (("node-failure-30m", 1800.0), ("node-failure-24h", 86400.0)):
        model = OnnxModel.load(bundled_card_path(name))
        data = fleet.labelled(horizon)
        x = data.filled()
        failure_time = fleet.failure_times_of(data)
        for label, score, threshold in (
            (name, model.run(x)["probabilities"][:, 1], float(model.card.thresholds["alert"])),
            (f"rule ({name[-3:]} labels)", node_rule(x), 0.5),
        ):
            m: dict[str, Any] = failure_metrics(
                np.asarray(score, dtype=float),
                data.y,
                data.time,
                data.subject,
                failure_time,
                threshold=threshold,
                row_step_seconds=node_failure.ROW_STEP_SECONDS,
            )
            lead = m["lead_time_median_minutes"]
            out.append(
                f"{label:26} P {m['precision']:.2f} R {m['recall']:.2f} F1 {m['f1']:.2f}"
                f"  PR-AUC {m['pr_auc']:.3f} (base {m['base_rate']:.4f})"
                f"  false alarms/node-day {m['false_alarms_per_node_day']:.2f}"
                f"  caught {m['failures_detected']}/{m['failures']}"
                f"  lead {f'{lead:.0f} min' if lead is not None else '-'}"
            )
    return out


def anomalies() -> list[str]:
    report, _, _ = nab_eval.evaluate(NAB_DIR, bundled_card_path("series-anomaly"), workers=2)
    out = []
    for label, key in (
        ("series-anomaly (held out)", "held_out"),
        ("flag every point", "flag_every_point_baseline"),
    ):
        s = report[key]
        out.append(
            f"{label:26} event P {s['event_precision']:.2f} R {s['event_recall']:.2f}"
            f" F1 {s['event_f1']:.3f}  point F1 {s['point_f1']:.3f}"
            f"  (point-adjusted F1 {s['point_adjusted_f1']:.3f})"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=40, help="fresh simulated fleet size")
    args = parser.parse_args()
    print("disks, Backblaze held-out period (7-day horizon)")
    print("\n".join(f"  {line}" for line in disks()), flush=True)
    print(f"\nnodes, fresh simulated fleet ({args.nodes} nodes x 3 days, seed {FRESH_SEED})")
    print("\n".join(f"  {line}" for line in nodes(args.nodes)), flush=True)
    print("\nanomalies, NAB series not tuned on")
    print("\n".join(f"  {line}" for line in anomalies()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
