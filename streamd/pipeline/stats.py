"""What the pipeline counts per table: rows produced, committed and rejected; retries and reopens.

The component that sees the event counts it here (the router: produced; dead letters: rejected;
the sinks: committed, retries, reopens). The run summary, the systemd watchdog and the reconciler's
freshness read these counts; `streamd.metrics` exports them to Prometheus. They are plain ints in
dicts because the router adds one per row, and a prometheus-client `Counter.inc` (a lock and
argument checks, ~0.6 µs) would be a tenth of a row's delivery budget. Only the event loop's thread
writes them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TableCounts:
    """One table's counts at one moment."""

    produced: int
    committed: int
    rejected: int


class PipelineStats:
    """Running counts of one daemon; each dict is written by the one component that counts it."""

    __slots__ = ("committed", "produced", "rejected", "reopens", "retries")

    def __init__(self) -> None:
        self.produced: dict[str, int] = {}
        """Table → rows sources handed to the router (the router adds one per row)."""
        self.committed: dict[str, int] = {}
        """Table → rows Snowflake reports committed."""
        self.rejected: dict[tuple[str, str], int] = {}
        """(table, rule) → rows dead-lettered instead of delivered."""
        self.retries: dict[tuple[str, str], int] = {}
        """(table, reason) → requests retried after a transient error."""
        self.reopens: dict[tuple[str, str], int] = {}
        """(table, reason) → channels reopened and replayed."""

    def commit(self, table: str, rows: int) -> None:
        """`rows` more rows of `table` are committed."""
        self.committed[table] = self.committed.get(table, 0) + rows

    def reject(self, table: str, rule: str, rows: int = 1) -> None:
        """`rows` rows of `table` broke `rule` and were dead-lettered."""
        key = (table, rule)
        self.rejected[key] = self.rejected.get(key, 0) + rows

    def retry(self, table: str, reason: str, times: int = 1) -> None:
        """A request for `table` was retried after a transient error (`reason`)."""
        key = (table, reason)
        self.retries[key] = self.retries.get(key, 0) + times

    def reopen(self, table: str, reason: str, times: int = 1) -> None:
        """A channel of `table` was reopened and replayed (`reason`)."""
        key = (table, reason)
        self.reopens[key] = self.reopens.get(key, 0) + times

    def table(self, table: str) -> TableCounts:
        """The counts of one table (zero for what it never had)."""
        return TableCounts(
            produced=self.produced.get(table, 0),
            committed=self.committed.get(table, 0),
            rejected=sum(n for (t, _), n in self.rejected.items() if t == table),
        )

    def total_retries(self) -> int:
        """Retries over every table and reason."""
        return sum(self.retries.values())

    def total_reopens(self) -> int:
        """Reopens over every table and reason."""
        return sum(self.reopens.values())
