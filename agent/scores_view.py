"""The ``== scores`` block of ``novacron-agent collect``: scores for people.

Probabilities come with their horizon and confidence interval, times to failure in
hours or days, and each prediction worth explaining with the features behind it, so
an operator can tell at a glance what the node's models think and why.
"""

from __future__ import annotations

from novacron.agent.scoring import (
    Anomaly,
    ContributingFactor,
    FailurePrediction,
    NodeScores,
    SubjectRisk,
)
from novacron.models.schema import DAY, HOUR, MINUTE

_MAX_ANOMALOUS_SUBJECTS = 5
_MAX_FEATURES_SHOWN = 3


def render_scores(scores: NodeScores | None) -> list[str]:
    """Lines of the scores block (without the ``== scores`` header)."""
    if scores is None:
        return ["scoring disabled ([scoring] enabled = false)"]
    lines: list[str] = []
    for p in scores.failure_predictions:
        if p.scope == "node":
            lines.append(_prediction_line("node failure", p))
            lines += _factor_lines(p.contributing_factors)
    disk = scores.riskiest_disk
    worst = _prediction_for(scores, disk) if disk is not None else None
    if worst is not None:
        lines.append(_prediction_line(f"riskiest disk  {worst.label} ({worst.subject})", worst))
        lines += _factor_lines(worst.contributing_factors)
    if scores.node_risk is not None:
        risk = scores.node_risk
        lines.append(f"node risk      from {risk.scope} {risk.label}: {_risk_text(risk)}")
    lines += _anomaly_lines(scores.anomalies)
    if scores.missing_models:
        lines.append(f"no model for   {', '.join(scores.missing_models)} (no such scores)")
    lines.append(f"scoring took   {scores.scoring_seconds * 1e6:.0f} us")
    return lines


def format_duration(seconds: float) -> str:
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.1f} d"
    if seconds >= 2 * HOUR:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / MINUTE:.0f} min"


def format_horizon(seconds: float) -> str:
    """``30m``, ``24h``, ``7d``: as the models are named (a day is 24 hours)."""
    for unit, suffix in ((DAY, "d"), (HOUR, "h"), (MINUTE, "m")):
        if seconds >= (2 * unit if unit == DAY else unit) and seconds % unit == 0:
            return f"{int(seconds // unit)}{suffix}"
    return f"{seconds:.0f}s"


def _prediction_line(title: str, p: FailurePrediction) -> str:
    interval = (
        f" (95% CI {p.ci_low:.3f}-{p.ci_high:.3f})"
        if p.ci_low is not None and p.ci_high is not None
        else " (no CI)"
    )
    ttf = p.estimated_time_to_failure_seconds
    eta = f", time to failure ~{format_duration(ttf)}" if ttf is not None else ""
    alert = "  ALERT" if p.alert else ""
    return (
        f"{title:<14} {format_horizon(p.horizon_seconds):>4}  p={p.probability:.3f}{interval}"
        f"{eta}{alert}  [{p.model} {p.model_version}]"
    )


def _factor_lines(factors: tuple[ContributingFactor, ...]) -> list[str]:
    return [
        f"  because      {f.feature} = {f.value:g} (baseline {f.baseline:g}): +{f.contribution:.3f}"
        for f in factors
    ]


def _risk_text(risk: SubjectRisk) -> str:
    ttf = risk.estimated_time_to_failure_seconds
    eta = f", time to failure ~{format_duration(ttf)}" if ttf is not None else ""
    return (
        f"p={risk.probability:.3f} within {format_horizon(risk.horizon_seconds)} "
        f"(= {risk.probability_24h:.3f} within 24h){eta}  [{risk.model} {risk.model_version}]"
    )


def _prediction_for(scores: NodeScores, risk: SubjectRisk) -> FailurePrediction | None:
    """The prediction a subject's risk came from (its most urgent horizon)."""
    return next(
        (
            p
            for p in scores.failure_predictions
            if p.scope == risk.scope and p.subject == risk.subject and p.model == risk.model
        ),
        None,
    )


def _anomaly_lines(anomalies: tuple[Anomaly, ...]) -> list[str]:
    lines = [_anomaly_line("anomaly node", a) for a in anomalies if a.scope == "node"]
    vms = [a for a in anomalies if a.scope == "vm"]
    if vms:
        flagged = sorted((a for a in vms if a.severity != "none"), key=lambda a: -a.score)
        lines.append(f"anomaly vms    {len(flagged)} of {len(vms)} VMs anomalous")
        lines += [_anomaly_line("  vm", a) for a in flagged[:_MAX_ANOMALOUS_SUBJECTS]]
    return lines


def _anomaly_line(title: str, a: Anomaly) -> str:
    features = ", ".join(
        f"{f.feature} z={f.z:+.1f}" for f in a.anomalous_features[:_MAX_FEATURES_SHOWN]
    )
    label = f" {a.label}" if a.scope == "vm" else ""
    return (
        f"{title:<14}{label} score {a.score:.3f} ({a.severity})"
        + (f": {features}" if features else "")
        + f"  [{a.model} {a.model_version}]"
    )
