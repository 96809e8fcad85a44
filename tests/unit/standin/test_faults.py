"""The fault SPEC parser and the plan's scheduling (every-Nth, count, probability, seeding)."""

from __future__ import annotations

import pytest

from streamd.standin.faults import FaultPlan, FaultRule, FaultSpecError, parse_fault_spec


def test_parses_the_documented_example() -> None:
    plan = parse_fault_spec(
        "append:429:p=0.05:retry_after=1, append:reset_after:every=50,status:500:p=0.02,"
        "open:409:count=2,*:slow=0.2:p=0.01,seed=7,commit_delay=0.5,commit_jitter=0.25"
    )
    assert plan.rules == [
        FaultRule("append", "429", p=0.05, retry_after=1),
        FaultRule("append", "reset_after", every=50),
        FaultRule("status", "500", p=0.02),
        FaultRule("open", "409", count=2),
        FaultRule("*", "slow", p=0.01, delay_s=0.2),
    ]
    assert (plan.commit_delay_s, plan.commit_jitter_s) == (0.5, 0.25)


def test_every_kind_and_code_parse() -> None:
    plan = parse_fault_spec(
        "hostname:503,token:500,drop:410:code=X,sql:429,append:invalidate:code=ERR_Y,"
        "append:reset_before:every=3:count=1"
    )
    assert [(r.endpoint, r.kind, r.error_code) for r in plan.rules] == [
        ("hostname", "503", "ERR_SERVICE_UNAVAILABLE"),
        ("token", "500", "ERR_INTERNAL_ERROR"),
        ("drop", "410", "X"),
        ("sql", "429", "ERR_TOO_MANY_REQUESTS"),
        ("append", "invalidate", "ERR_Y"),
        ("append", "reset_before", ""),
    ]
    assert parse_fault_spec("").rules == []
    assert parse_fault_spec("  ").rules == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("append", "bad fault spec item 'append': expected ENDPOINT:KIND"),
        ("upload:500", "bad fault spec item 'upload:500': unknown endpoint 'upload'"),
        ("append:404", "bad fault spec item 'append:404': unknown fault kind '404'"),
        ("append:429:p=2", "bad fault spec item 'append:429:p=2': p=2.0 is not in (0, 1]"),
        ("append:429:p=x", "'append:429:p=x': p='x' is not a number"),
        ("append:429:p=0.1:every=2", "give either p= or every=, not both"),
        ("append:500:every=0", "every='0' must be >= 1"),
        ("append:500:count=-1", "count='-1' must be >= 1"),
        ("append:500:retry_after=1", "retry_after= needs kind 429"),
        ("append:429:retry_after=0.5", "retry_after='0.5' is not a whole number"),
        ("append:slow", "expected NAME=VALUE, got 'slow'"),
        ("append:slow=0", "slow='0' must be > 0 seconds"),
        ("append:slowly=1", "unknown fault kind 'slowly=1'"),
        ("open:invalidate", "invalidate applies to the append endpoint only"),
        ("append:429:foo=1", "unknown parameter 'foo'"),
        ("append:429:p=0.1:p=0.2", "parameter 'p' given twice"),
        ("append:reset_after:code=X", "code= does not apply to kind reset_after"),
        ("append:500,,status:500", "empty item in fault spec"),
        ("seed=abc", "bad fault spec item 'seed=abc': seed='abc' is not a whole number"),
        ("commit_delay=-1", "commit_delay='-1' must be >= 0 seconds"),
        ("speed=3", "bad fault spec item 'speed=3': expected ENDPOINT:KIND"),
    ],
)
def test_bad_specs_name_the_bad_part_in_one_line(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        parse_fault_spec(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_nth_is_exact_and_count_limits() -> None:
    plan = FaultPlan([FaultRule("append", "500", every=3, count=2)])
    fired = [plan.decide("append").action is not None for _ in range(12)]
    assert fired == [False, False, True, False, False, True] + [False] * 6
    assert plan.decide("status").action is None
    assert plan.injected("append", "500") == 2
    assert plan.injected("status") == 0


def test_slow_adds_up_and_first_terminal_rule_wins() -> None:
    plan = FaultPlan(
        [
            FaultRule("*", "slow", delay_s=0.1),
            FaultRule("append", "503"),
            FaultRule("append", "slow", delay_s=0.2),
            FaultRule("append", "500"),
        ]
    )
    decision = plan.decide("append")
    assert decision.delay_s == pytest.approx(0.3)
    assert decision.action is not None
    assert decision.action.kind == "503"
    assert plan.counts() == {("append", "slow"): 2, ("append", "503"): 1}
    other = plan.decide("open")
    assert (other.delay_s, other.action) == (0.1, None)


def test_probability_is_seeded_and_reproducible() -> None:
    def run(seed: int) -> list[bool]:
        plan = FaultPlan([FaultRule("append", "429", p=0.3)], seed=seed)
        return [plan.decide("append").action is not None for _ in range(200)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert 30 < sum(run(1)) < 90


def test_commit_delay_jitter_and_freeze_notify() -> None:
    calls: list[str] = []
    plan = FaultPlan(seed=3)
    plan.subscribe(lambda: calls.append("x"))
    assert plan.commit_delay(1.5) == 1.5
    plan.set_commit_delay(0.5, 0.2)
    delays = [plan.commit_delay(9.0) for _ in range(50)]
    assert all(0.5 <= d <= 0.7 for d in delays)
    assert len(set(delays)) > 40
    plan.freeze_commits()
    assert plan.frozen
    plan.release_commits()
    assert not plan.frozen
    assert calls == ["x", "x", "x"]
    with pytest.raises(FaultSpecError):
        plan.set_commit_delay(-1)


def test_clear_and_remove_keep_counters() -> None:
    plan = FaultPlan()
    rule = plan.add(FaultRule("open", "409"))
    assert plan.decide("open").action is rule
    plan.remove(rule)
    assert plan.decide("open").action is None
    plan.add(FaultRule("open", "410"))
    plan.clear()
    assert plan.rules == []
    assert plan.injected() == 1
    plan.reset_counts()
    assert plan.injected() == 0
