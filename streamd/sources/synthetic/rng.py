"""A seeded random generator small enough to give each of 10,000 producers its own.

`random.Random` carries the Mersenne Twister's 2.5 KB of C state (a subclass still does), so one
per sensor producer cost 25 MB at 10,000 producers. `SmallRng` is SplitMix64 (Steele, Lea and
Flood, 2014, the generator Java's SplittableRandom uses; it passes BigCrush): its state is one
64-bit int, any seed is valid, and an instance with its ints weighs about 100 bytes.

The price is CPU: each 64-bit draw is a few big-int operations in Python, ~0.5 µs against the
Twister's ~0.05 µs. `gauss` takes both Box–Muller uniforms from one draw (32 bits each) to halve
that for the sensor model, whose rows are mostly Gaussian noise.

The distributions are implemented here rather than borrowed from `random`, so the values for a
seed depend on this module only, not on the Python version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_TO_UNIT = 2.0**-53
"""Turns a 53-bit int into a float in [0, 1) (every such float is exact)."""
_TO_ANGLE = 2.0 * math.pi / 2.0**32
_TO_UNIT32 = 2.0**-32

_log, _sqrt, _cos, _sin = math.log, math.sqrt, math.cos, math.sin


class SmallRng:
    """SplitMix64 with the few distributions the synthetic models draw from.

    Same seed, same calls → same values, in every process (no salted hashing anywhere).
    """

    __slots__ = ("_spare", "_state")

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK
        self._spare: float | None = None
        """The second normal deviate of the last Box–Muller pair, not yet returned."""

    def next64(self) -> int:
        """The next raw 64-bit output."""
        s = self._state = (self._state + _GOLDEN) & _MASK
        s = (s ^ (s >> 30)) * _MIX1 & _MASK
        s = (s ^ (s >> 27)) * _MIX2 & _MASK
        return s ^ (s >> 31)

    def random(self) -> float:
        """A float in [0, 1) from the top 53 bits of a draw (the step is inlined: it is hot)."""
        s = self._state = (self._state + _GOLDEN) & _MASK
        s = (s ^ (s >> 30)) * _MIX1 & _MASK
        s = (s ^ (s >> 27)) * _MIX2 & _MASK
        return ((s ^ (s >> 31)) >> 11) * _TO_UNIT

    def uniform(self, a: float, b: float) -> float:
        """A float between `a` and `b`."""
        return a + (b - a) * self.random()

    def gauss(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        """A normal deviate (Box–Muller; the pair's second value serves the next call)."""
        z = self._spare
        if z is None:
            z, self._spare = self._box_muller()
        else:
            self._spare = None
        return mu + z * sigma

    def normals(self) -> tuple[float, float]:
        """Two standard normal deviates: the values of two `gauss()` calls, from one draw."""
        if self._spare is not None:
            return self.gauss(), self.gauss()
        return self._box_muller()

    def _box_muller(self) -> tuple[float, float]:
        s = self.next64()
        angle = (s >> 32) * _TO_ANGLE
        # 1 - u, with u on a 2**-32 grid, is never 0, so the log is finite (|z| < 6.7).
        radius = _sqrt(-2.0 * _log(((s & 0xFFFFFFFF) + 1) * _TO_UNIT32))
        return _cos(angle) * radius, _sin(angle) * radius

    def randrange(self, n: int) -> int:
        """An int in 0..n-1 (multiply-shift: bias below n / 2**64, far under anything drawn)."""
        if n <= 0:
            raise ValueError(f"empty range for randrange({n})")
        return (self.next64() * n) >> 64

    def randint(self, a: int, b: int) -> int:
        """An int in a..b, both included."""
        return a + self.randrange(b - a + 1)

    def choice(self, seq: Sequence[T]) -> T:
        """One element of a non-empty sequence."""
        return seq[self.randrange(len(seq))]

    def weighted(self, population: Sequence[T], weights: Sequence[float]) -> T:
        """One element, picked with probability proportional to its weight."""
        x = self.random() * math.fsum(weights)
        for item, weight in zip(population, weights, strict=True):
            x -= weight
            if x < 0.0:
                return item
        return population[-1]  # x ran past the end by rounding only

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        """`k` distinct elements in random order (a partial Fisher–Yates shuffle)."""
        pool = list(population)
        if not 0 <= k <= len(pool):
            raise ValueError(f"sample of {k} from {len(pool)} elements")
        for i in range(k):
            j = i + self.randrange(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def expovariate(self, lambd: float) -> float:
        """An exponential deviate with rate `lambd` (mean 1 / lambd)."""
        return -_log(1.0 - self.random()) / lambd

    def paretovariate(self, alpha: float) -> float:
        """A Pareto deviate with shape `alpha` (at least 1)."""
        return float((1.0 - self.random()) ** (-1.0 / alpha))
