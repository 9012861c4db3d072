"""Counter-based random numbers: every draw is a pure function of (key, counters).

A simulated sample at absolute index ``k`` draws ``normal(k)``, never "the next number of a
stream", so its value does not depend on how often or in which chunks the driver is polled, on
where a run started, or on whether the process restarted in between. SplitMix64 (Steele, Lea
and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) is the mixer: a few
integer operations per draw, good enough statistically for simulated instruments.
"""

from __future__ import annotations

import hashlib
import math
import random

_MASK = (1 << 64) - 1
_TWO_PI = 2.0 * math.pi


def _mix(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class Rng:
    """Random draws addressed by integer counters, under a key built from ``parts``."""

    __slots__ = ("key",)

    def __init__(self, *parts: object) -> None:
        digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
        self.key = int.from_bytes(digest, "little")

    def child(self, *parts: object) -> Rng:
        return Rng(self.key, *parts)

    def smoother(self, scale_s: float) -> SmoothNoise:
        """``smooth(t, scale_s)`` as a callable that keeps the current knots (for hot loops)."""
        return SmoothNoise(self, scale_s)

    def stream(self, *parts: object) -> SampleStream:
        """Per-sample draws for a hot loop (same values whatever the access pattern)."""
        return SampleStream(self.child(*parts))

    def bits(self, *counters: int) -> int:
        h = self.key
        for c in counters:
            h = _mix(h ^ (c & _MASK))
        return h

    def uniform(self, *counters: int) -> float:
        """Uniform in [0, 1)."""
        return (self.bits(*counters) >> 11) * (1.0 / (1 << 53))

    def normal(self, *counters: int) -> float:
        """Standard normal (Box–Muller)."""
        h = self.bits(*counters)
        u1 = ((_mix(h ^ 1) >> 11) + 1) * (1.0 / ((1 << 53) + 1))  # (0, 1]: log is finite
        u2 = (_mix(h ^ 2) >> 11) * (1.0 / (1 << 53))
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)

    def smooth(self, t_s: float, scale_s: float, *counters: int) -> float:
        """Smoothly varying standard normal noise: independent values at knots every
        ``scale_s`` seconds, blended with a smoothstep and rescaled to unit variance."""
        x = t_s / scale_s
        n = math.floor(x)
        f = x - n
        s = f * f * (3.0 - 2.0 * f)
        a = self.normal(*counters, n)
        b = self.normal(*counters, n + 1)
        return (a * (1.0 - s) + b * s) / math.sqrt((1.0 - s) ** 2 + s * s)


class SampleStream:
    """One normal and one uniform draw per sample index, generated a block at a time.

    Block ``b`` is filled by a Mersenne Twister seeded from ``(key, b)``, so a value depends on
    its index only; blocks make the per-sample cost a fraction of a counter-based draw.
    """

    BLOCK = 4096
    __slots__ = ("_block", "_normals", "_rng", "_uniforms")

    def __init__(self, rng: Rng) -> None:
        self._rng = rng
        self._block: int | None = None
        self._normals: list[float] = []
        self._uniforms: list[float] = []

    def _fill(self, block: int) -> None:
        gen = random.Random(self._rng.bits(block))
        self._normals = [gen.gauss(0.0, 1.0) for _ in range(self.BLOCK)]
        self._uniforms = [gen.random() for _ in range(self.BLOCK)]
        self._block = block

    def normal(self, index: int) -> float:
        block, i = divmod(index, self.BLOCK)
        if block != self._block:
            self._fill(block)
        return self._normals[i]

    def uniform(self, index: int) -> float:
        block, i = divmod(index, self.BLOCK)
        if block != self._block:
            self._fill(block)
        return self._uniforms[i]


class SmoothNoise:
    """``Rng.smooth`` at a fixed scale, remembering the knots of the last interval."""

    __slots__ = ("_a", "_b", "_n", "_rng", "_scale_s")

    def __init__(self, rng: Rng, scale_s: float) -> None:
        self._rng = rng
        self._scale_s = scale_s
        self._n: int | None = None
        self._a = self._b = 0.0

    def __call__(self, t_s: float) -> float:
        x = t_s / self._scale_s
        n = math.floor(x)
        if n != self._n:
            if self._n is not None and n == self._n + 1:
                self._a = self._b
            else:
                self._a = self._rng.normal(n)
            self._b = self._rng.normal(n + 1)
            self._n = n
        f = x - n
        s = f * f * (3.0 - 2.0 * f)
        return (self._a * (1.0 - s) + self._b * s) / math.sqrt((1.0 - s) ** 2 + s * s)
