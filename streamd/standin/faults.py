"""Fault plan: what the stand-in injects, when, and how often it really did (§2.18).

A plan is a list of rules plus global commit knobs. Each rule names an endpoint, a fault kind and a
schedule. The stand-in asks the plan once per request (`decide`); tests hold the same object as
`Standin.faults` and may change it while the stand-in runs (it is thread-safe).

SPEC grammar (`parse_fault_spec`, used by `streamd standin serve --faults SPEC`)::

    SPEC     := ITEM ("," ITEM)*              whitespace around items is ignored; "" = no faults
    ITEM     := GLOBAL | RULE
    GLOBAL   := "seed=" INT | "commit_delay=" SECONDS | "commit_jitter=" SECONDS
    RULE     := ENDPOINT ":" KIND (":" PARAM)*
    ENDPOINT := hostname | token | open | append | status | drop | sql | *
    KIND     := 429 | 500 | 503 | 409 | 410 | 403 | reset_before | reset_after | invalidate
              | slow=SECONDS
    PARAM    := p=FLOAT          probability per matching request, 0 < p <= 1
              | every=INT        the INT-th, 2·INT-th, … matching request (INT >= 1)
              | count=INT        fire at most INT times in all (INT >= 1)
              | retry_after=INT  429 only: send `Retry-After: INT` (seconds); absent = no header
              | code=CODE        error code in the JSON body (status kinds and invalidate)

Without `p` or `every` a rule fires on every matching request (until `count` runs out); `p` and
`every` together are an error. Example::

    append:429:p=0.05:retry_after=1,append:reset_after:every=50,status:500:p=0.02,
    open:409:count=2,*:slow=0.2:p=0.01,seed=7

Kinds: `429`/`500`/`503`/`410` answer that status with `{"code", "message"}` without applying
the request; `409` does the same with `ERR_CHANNEL_HAS_UNCOMMITTED_DATA`; `reset_before` closes the
connection without a response before the request is applied; `reset_after` applies the request and
then closes the connection without a response (the ambiguous case); `slow=S` delays the request by
S seconds and then serves it normally; `invalidate` (append only) marks the channel invalid with
`code` (default `ERR_CHANNEL_MUST_BE_REOPENED`): bulk status reports that code as
`channel_status_code`, its uncommitted batches are discarded and appends fail 400 with that code
until the channel is reopened.

`append` covers the official SDK's file-mode registrations (`/filebuffer`) as well as `/rows`.

Every rule counts the requests of its endpoint on its own, so `every=N` is exact per rule. `slow`
rules add up; of the other kinds the first rule (in plan order) that fires wins and later ones do
not fire on that request (their `every` slot is then lost).
"""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

ENDPOINTS = ("hostname", "token", "open", "append", "status", "drop", "sql")
STATUS_KINDS = {"429": 429, "500": 500, "503": 503, "409": 409, "410": 410, "403": 403}
KINDS = (*STATUS_KINDS, "reset_before", "reset_after", "invalidate", "slow")
DEFAULT_CODES = {
    # Only 409's code is documented (§2.10); the others are the stand-in's choice.
    "429": "ERR_TOO_MANY_REQUESTS",
    "500": "ERR_INTERNAL_ERROR",
    "503": "ERR_SERVICE_UNAVAILABLE",
    "409": "ERR_CHANNEL_HAS_UNCOMMITTED_DATA",
    "410": "ERR_PIPE_FAILED_OVER",
    "403": "ERR_FORBIDDEN",
    "invalidate": "ERR_CHANNEL_MUST_BE_REOPENED",
}


class FaultSpecError(ValueError):
    """A fault rule or SPEC that makes no sense; the message is one line naming the bad part."""


@dataclass(slots=True)
class FaultRule:
    """One rule; `seen` and `fired` are live counters kept by the plan."""

    endpoint: str
    kind: str
    p: float | None = None
    every: int | None = None
    count: int | None = None
    retry_after: int | None = None
    delay_s: float = 0.0
    """For `slow`: seconds to delay the request."""
    code: str | None = None
    seen: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise FaultSpecError(
                f"unknown endpoint {self.endpoint!r} (one of {', '.join(ENDPOINTS)}, *)"
            )
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.p is not None and self.every is not None:
            raise FaultSpecError("give either p= or every=, not both")
        if self.p is not None and not 0 < self.p <= 1:
            raise FaultSpecError(f"p={self.p} is not in (0, 1]")
        if self.every is not None and self.every < 1:
            raise FaultSpecError(f"every={self.every} is not >= 1")
        if self.count is not None and self.count < 1:
            raise FaultSpecError(f"count={self.count} is not >= 1")
        if self.retry_after is not None and (self.kind != "429" or self.retry_after < 0):
            raise FaultSpecError("retry_after= needs kind 429 and a whole number of seconds >= 0")
        if self.kind == "slow" and not (math.isfinite(self.delay_s) and self.delay_s > 0):
            raise FaultSpecError(f"slow needs a delay > 0 seconds, not {self.delay_s}")
        if self.kind == "invalidate" and self.endpoint != "append":
            raise FaultSpecError("invalidate applies to the append endpoint only")
        if self.code is not None and self.kind not in DEFAULT_CODES:
            raise FaultSpecError(f"code= does not apply to kind {self.kind}")

    @property
    def error_code(self) -> str:
        """The `code` of the error body (or of the invalid channel)."""
        return self.code or DEFAULT_CODES.get(self.kind, "")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: delay it, then apply `action` (None = serve normally)."""

    delay_s: float = 0.0
    action: FaultRule | None = None


NO_FAULT = Decision()


class FaultPlan:
    """Mutable, thread-safe fault plan with a seeded RNG and per-(endpoint, kind) counters."""

    def __init__(
        self,
        rules: Iterable[FaultRule] = (),
        *,
        seed: int = 0,
        commit_delay_s: float | None = None,
        commit_jitter_s: float = 0.0,
    ) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._injected: Counter[tuple[str, str]] = Counter()
        self._frozen = False
        self._listeners: list[Callable[[], None]] = []
        self.commit_delay_s: float | None = None
        """Overrides `StandinSettings.commit_delay_s` when set."""
        self.commit_jitter_s = 0.0
        self.set_commit_delay(commit_delay_s, commit_jitter_s)
        for rule in rules:
            self.add(rule)

    # ---- rules ----------------------------------------------------------------------------

    def add(self, rule: FaultRule) -> FaultRule:
        """Append a rule (it counts requests from now on); returns it for its counters."""
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Remove one rule."""
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear(self) -> None:
        """Remove every rule (counters of what was injected are kept)."""
        with self._lock:
            self._rules = []

    @property
    def rules(self) -> list[FaultRule]:
        """A copy of the current rules, in plan order."""
        with self._lock:
            return list(self._rules)

    def seed(self, seed: int) -> None:
        """Reseed the RNG behind `p=` rules and jitter."""
        with self._lock:
            self._rng.seed(seed)

    def decide(self, endpoint: str) -> Decision:
        """Count one request on `endpoint` against every matching rule; what to inject."""
        with self._lock:
            if not self._rules:
                return NO_FAULT
            delay = 0.0
            action: FaultRule | None = None
            for rule in self._rules:
                if rule.endpoint not in ("*", endpoint):
                    continue
                rule.seen += 1
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.kind != "slow" and action is not None:
                    continue
                if rule.every is not None:
                    hit = rule.seen % rule.every == 0
                else:
                    hit = rule.p is None or self._rng.random() < rule.p
                if not hit:
                    continue
                rule.fired += 1
                self._injected[(endpoint, rule.kind)] += 1
                if rule.kind == "slow":
                    delay += rule.delay_s
                else:
                    action = rule
            return Decision(delay, action) if delay or action else NO_FAULT

    # ---- counters -------------------------------------------------------------------------

    def injected(self, endpoint: str | None = None, kind: str | None = None) -> int:
        """How many faults fired, optionally only on `endpoint` and/or of `kind`."""
        with self._lock:
            return sum(
                n
                for (e, k), n in self._injected.items()
                if endpoint in (None, e) and kind in (None, k)
            )

    def counts(self) -> dict[tuple[str, str], int]:
        """Faults fired so far per (endpoint, kind)."""
        with self._lock:
            return dict(self._injected)

    def reset_counts(self) -> None:
        """Zero the per-(endpoint, kind) counters (rules keep their own)."""
        with self._lock:
            self._injected.clear()

    # ---- commit pipeline ------------------------------------------------------------------

    def set_commit_delay(self, delay_s: float | None, jitter_s: float = 0.0) -> None:
        """Commit `delay_s` (None = the settings' value) plus uniform [0, jitter_s] after append."""
        for name, value in (("commit delay", delay_s), ("commit jitter", jitter_s)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise FaultSpecError(f"{name} {value} is not a number of seconds >= 0")
        with self._lock:
            self.commit_delay_s = delay_s
            self.commit_jitter_s = jitter_s
        self._notify()

    def commit_delay(self, default_s: float) -> float:
        """One sampled delay between an append and its commit."""
        with self._lock:
            base = default_s if self.commit_delay_s is None else self.commit_delay_s
            if self.commit_jitter_s <= 0:
                return base
            return base + self._rng.uniform(0, self.commit_jitter_s)

    @property
    def frozen(self) -> bool:
        """True while `freeze_commits()` holds the commit pipeline."""
        return self._frozen

    def freeze_commits(self) -> None:
        """Nothing commits until `release_commits()`; appends are still answered 200."""
        self._frozen = True
        self._notify()

    def release_commits(self) -> None:
        """Let the commit pipeline run again (what became due meanwhile commits at once)."""
        self._frozen = False
        self._notify()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) whenever freeze or commit delay change."""
        with self._lock:
            self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        """Stop calling `callback`."""
        with self._lock:
            self._listeners = [c for c in self._listeners if c is not callback]

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback()


# ---- SPEC parser ----------------------------------------------------------------------------


def parse_fault_spec(text: str) -> FaultPlan:
    """Parse a SPEC (grammar in the module docstring); FaultSpecError names the bad item."""
    rules: list[FaultRule] = []
    knobs: dict[str, float] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            if text.strip():
                raise FaultSpecError(f"empty item in fault spec {text!r}")
            continue
        try:
            if ":" in item:
                rules.append(_rule(item))
            else:
                name, value = _global(item)
                knobs[name] = value
        except FaultSpecError as err:
            raise FaultSpecError(f"bad fault spec item {item!r}: {err}") from None
    seed = int(knobs.get("seed", 0))
    delay = knobs.get("commit_delay")
    jitter = knobs.get("commit_jitter", 0.0)
    return FaultPlan(rules, seed=seed, commit_delay_s=delay, commit_jitter_s=jitter)


def _global(item: str) -> tuple[str, float]:
    name, value = _param(item) if "=" in item else ("", "")
    if name == "seed":
        return name, _int(value, name, minimum=None)
    if name in ("commit_delay", "commit_jitter"):
        return name, _seconds(value, name, allow_zero=True)
    raise FaultSpecError("expected ENDPOINT:KIND[:PARAM…] or seed=/commit_delay=/commit_jitter=")


def _rule(item: str) -> FaultRule:
    endpoint, kind, *params = (part.strip() for part in item.split(":"))
    values: dict[str, str] = {}
    delay = 0.0
    if kind.startswith("slow"):
        name, value = _param(kind)
        if name != "slow":
            raise FaultSpecError(f"unknown fault kind {kind!r}")
        kind, delay = "slow", _seconds(value, "slow", allow_zero=False)
    for part in params:
        name, value = _param(part)
        if name not in ("p", "every", "count", "retry_after", "code"):
            raise FaultSpecError(f"unknown parameter {name!r} (p, every, count, retry_after, code)")
        if name in values:
            raise FaultSpecError(f"parameter {name!r} given twice")
        values[name] = value
    p = values.get("p")
    every, count, retry = (values.get(k) for k in ("every", "count", "retry_after"))
    return FaultRule(
        endpoint=endpoint,
        kind=kind,
        p=None if p is None else _float(p, "p"),
        every=None if every is None else _int(every, "every", minimum=1),
        count=None if count is None else _int(count, "count", minimum=1),
        retry_after=None if retry is None else _int(retry, "retry_after", minimum=0),
        delay_s=delay,
        code=values.get("code"),
    )


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise FaultSpecError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _float(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise FaultSpecError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise FaultSpecError(f"{name}={value!r} is not a finite number")
    return number


def _seconds(value: str, name: str, *, allow_zero: bool) -> float:
    number = _float(value, name)
    if number < 0 or (number == 0 and not allow_zero):
        raise FaultSpecError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'} seconds")
    return number


def _int(value: str, name: str, *, minimum: int | None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise FaultSpecError(f"{name}={value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise FaultSpecError(f"{name}={value!r} must be >= {minimum}")
    return number
