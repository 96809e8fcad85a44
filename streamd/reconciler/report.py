"""What a reconciler cycle finds: `Finding`s (severity, object, message, action) and the `HealthReport`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class Remedy:
    """A fix the reconciler may apply itself when the matching remediation switch is on."""

    kind: Literal["resume_task", "execute_task"]
    statement: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or notice) about one object, from one check."""

    check: str
    """The concern that found it: `channel`, `stream`, `task`, `dynamic_table`, …"""
    severity: Severity
    object: str
    """What it is about: a fully qualified name, a channel, a stage location."""
    message: str
    action: str
    """What an operator should do about it."""
    first_seen: float | None = None
    """Wall time of the first cycle that found it (set by the report; kept while it persists)."""
    remedies: tuple[Remedy, ...] = ()
    failed_query: bool = False
    """True when the finding is about a check that could not run (its SQL failed, or it broke),
    not about the object."""

    @property
    def key(self) -> tuple[str, str]:
        """Identity across cycles: the same check about the same object is the same finding."""
        return (self.check, self.object)

    def as_json(self) -> dict[str, Any]:
        """The finding as `/status` and `inspect --json` show it."""
        return {
            "check": self.check,
            "severity": self.severity,
            "object": self.object,
            "message": self.message,
            "action": self.action,
            "first_seen": self.first_seen,
        }


@dataclass(frozen=True, slots=True)
class Freshness:
    """One source's end-to-end freshness: newest event produced → newest row visible at the end."""

    source: str
    table: str
    final: str
    target_s: float
    lag_s: float | None
    """Seconds the end of the pipeline trails the newest produced event; None when unknown."""
    newest_visible: float | None
    """Wall time of the newest event-time value in the final object; None when it is empty."""

    def as_json(self) -> dict[str, Any]:
        """This freshness for `/status`."""
        return {
            "source": self.source,
            "table": self.table,
            "final": self.final,
            "target_s": self.target_s,
            "lag_s": None if self.lag_s is None else round(self.lag_s, 1),
            "newest_visible": self.newest_visible,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """How one finding moved between two cycles."""

    kind: Literal["raised", "cleared", "changed"]
    finding: Finding
    previous: Finding | None = None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The findings of the latest cycle, with when it ran and how long it took."""

    findings: tuple[Finding, ...] = ()
    freshness: tuple[Freshness, ...] = ()
    cycle_started: float | None = None
    """Wall time the cycle began; None before the first cycle."""
    cycle_s: float = 0.0
    cycles: int = 0

    @property
    def degraded_reasons(self) -> list[str]:
        """One line per critical finding: what `/healthz` answers when degraded."""
        return [
            f"{f.check} {f.object}: {f.message}" for f in self.findings if f.severity == "critical"
        ]

    def count(self, severity: Severity) -> int:
        """How many findings of `severity`."""
        return sum(1 for f in self.findings if f.severity == severity)

    def as_json(self) -> dict[str, Any]:
        """The report as the `reconciler` part of `/status`."""
        return {
            "cycles": self.cycles,
            "cycle_started": self.cycle_started,
            "cycle_s": round(self.cycle_s, 3),
            "counts": {s: self.count(s) for s in SEVERITIES},
            "findings": [f.as_json() for f in self.findings],
            "freshness": [f.as_json() for f in self.freshness],
        }


def merge(
    previous: HealthReport, found: list[Finding], now: float
) -> tuple[list[Finding], list[Change]]:
    """This cycle's findings with `first_seen` carried over, and what changed since `previous`.

    Findings are ordered most severe first, then by check and object, so every view is stable.
    """
    before = {f.key: f for f in previous.findings}
    merged: dict[tuple[str, str], Finding] = {}
    changes: list[Change] = []
    for finding in found:
        # Two findings about one object from one check: keep the more severe one.
        if finding.key in merged and _rank(finding) <= _rank(merged[finding.key]):
            continue
        old = before.get(finding.key)
        first_seen = old.first_seen if old is not None else now
        merged[finding.key] = replace(finding, first_seen=first_seen)
    for key, finding in merged.items():
        old = before.get(key)
        if old is None:
            changes.append(Change("raised", finding))
        elif old.severity != finding.severity:
            changes.append(Change("changed", finding, old))
    changes += [Change("cleared", old) for key, old in before.items() if key not in merged]
    ordered = sorted(merged.values(), key=lambda f: (-_rank(f), f.check, f.object))
    return ordered, changes


def _rank(finding: Finding) -> int:
    return SEVERITIES.index(finding.severity)
