"""SmallRng: the reference SplitMix64 stream, determinism, the distributions' shapes, its size."""

from __future__ import annotations

import math
import statistics
import sys
from collections import Counter

import pytest

from streamd.sources.synthetic.rng import SmallRng
from streamd.sources.synthetic.schedule import producer_rng

N = 40_000


def test_matches_the_splitmix64_reference_stream() -> None:
    # The first outputs for seed 1234567 of Vigna's splitmix64.c.
    rng = SmallRng(1234567)
    assert [rng.next64() for _ in range(5)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
        4593380528125082431,
        16408922859458223821,
    ]


def test_same_seed_same_values_other_seed_other_values() -> None:
    def draws(rng: SmallRng) -> list[float]:
        return [rng.gauss(0.0, 1.0) + rng.random() + rng.randrange(1000) for _ in range(100)]

    assert draws(producer_rng(42, "sensor-EQ-0001")) == draws(producer_rng(42, "sensor-EQ-0001"))
    assert draws(producer_rng(42, "sensor-EQ-0001")) != draws(producer_rng(42, "sensor-EQ-0002"))
    assert draws(producer_rng(42, "sensor-EQ-0001")) != draws(producer_rng(7, "sensor-EQ-0001"))


def test_random_and_uniform_cover_their_interval_evenly() -> None:
    rng = SmallRng(1)
    values = [rng.random() for _ in range(N)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert statistics.fmean(values) == pytest.approx(0.5, abs=0.01)
    deciles = Counter(int(v * 10) for v in values)
    assert all(abs(deciles[d] - N / 10) < 0.05 * N / 10 for d in range(10)), deciles
    spread = [rng.uniform(-2.0, 3.0) for _ in range(N)]
    assert all(-2.0 <= v <= 3.0 for v in spread)
    assert statistics.fmean(spread) == pytest.approx(0.5, abs=0.05)


def test_gauss_has_the_asked_mean_and_spread_and_normal_tails() -> None:
    rng = SmallRng(2)
    values = [rng.gauss(10.0, 2.0) for _ in range(N)]
    assert statistics.fmean(values) == pytest.approx(10.0, abs=0.05)
    assert statistics.stdev(values) == pytest.approx(2.0, rel=0.02)
    beyond_2_sigma = sum(abs(v - 10.0) > 4.0 for v in values) / N
    assert beyond_2_sigma == pytest.approx(0.0455, abs=0.006)
    # Consecutive deviates (the two halves of a Box–Muller pair) are uncorrelated.
    assert abs(statistics.correlation(values[::2], values[1::2])) < 0.02


def test_normals_are_the_next_two_gauss_values_with_or_without_a_spare() -> None:
    pairs, singles = SmallRng(3), SmallRng(3)
    for _ in range(50):
        assert pairs.normals() == (singles.gauss(), singles.gauss())
    singles.gauss()  # leaves a spare deviate pending
    pairs.gauss()
    assert pairs.normals() == (singles.gauss(), singles.gauss())
    assert pairs.random() == singles.random()


def test_integers_cover_their_range_evenly() -> None:
    rng = SmallRng(3)
    counts = Counter(rng.randint(5, 9) for _ in range(N))
    assert set(counts) == {5, 6, 7, 8, 9}
    assert all(abs(c - N / 5) < 0.05 * N / 5 for c in counts.values()), counts
    assert {rng.randrange(1) for _ in range(100)} == {0}
    big = [rng.randrange(10**9) for _ in range(1000)]
    assert all(0 <= b < 10**9 for b in big)
    assert len(set(big)) > 990
    with pytest.raises(ValueError, match="empty range"):
        rng.randrange(0)


def test_choice_weighted_and_sample() -> None:
    rng = SmallRng(4)
    assert Counter(rng.choice("abc") for _ in range(3000)).keys() == {"a", "b", "c"}
    picks = Counter(rng.weighted(("x", "y", "z"), (0.7, 0.2, 0.1)) for _ in range(N))
    assert picks["x"] / N == pytest.approx(0.7, abs=0.015)
    assert picks["z"] / N == pytest.approx(0.1, abs=0.01)
    for _ in range(200):
        chosen = rng.sample(range(6), 3)
        assert len(set(chosen)) == 3
        assert set(chosen) <= set(range(6))
    firsts = Counter(rng.sample("abcd", 2)[0] for _ in range(8000))
    assert all(abs(c - 2000) < 200 for c in firsts.values()), firsts
    with pytest.raises(ValueError, match="sample of 5"):
        rng.sample("abcd", 5)


def test_expovariate_and_paretovariate_means() -> None:
    rng = SmallRng(5)
    assert statistics.fmean(rng.expovariate(0.25) for _ in range(N)) == pytest.approx(4.0, rel=0.03)
    pareto = [rng.paretovariate(3.0) for _ in range(N)]
    assert min(pareto) >= 1.0
    # Mean of Pareto(alpha) is alpha / (alpha - 1).
    assert statistics.fmean(pareto) == pytest.approx(1.5, rel=0.03)
    assert all(math.isfinite(p) for p in pareto)


def test_is_small() -> None:
    # The point of it: a Mersenne Twister random.Random is ~2.5 KB per producer.
    rng = producer_rng(42, "sensor-EQ-0001")
    rng.gauss(0.0, 1.0)
    size = sys.getsizeof(rng) + sys.getsizeof(rng.next64()) + sys.getsizeof(1.0)
    assert size < 160
