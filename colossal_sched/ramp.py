r"""Megatron-LM's batch-size ramp-up (``--rampup-batch-size start increment ramp_samples``) as data.

With :math:`n = (G - s) / i` increments, the global batch at :math:`c` consumed samples is

.. math::
    B(c) = \begin{cases} s + i\,\lfloor c\,n / R \rfloor & c \le R \\ G & c > R \end{cases}

in exact integer arithmetic. Megatron computes ``int(c / (R / n))`` in floats; the two agree except where
float rounding puts ``c / (R / n)`` just below the integer it equals: at a stage boundary :math:`cn = kR`,
Megatron's batch can be one increment lower (``(32, 32, 3000, 1024)`` at ``c = 3000``: Megatron 992, here 1024).
Degenerate ramps are allowed and mean "no ramp": ``start == global_batch_size`` (every batch is
:math:`G`) and ``ramp_samples == 0`` (every batch is :math:`G`); Megatron divides by zero on both.
"""
from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from . import _validate as V

_FIELDS = ("start", "increment", "ramp_samples", "global_batch_size")


@dataclass(frozen=True)
class BatchRamp:
    """A global batch that grows from ``start`` by ``increment`` over ``ramp_samples`` samples to ``global_batch_size``.

    Args:
        start (int): The first global batch, in ``[1, global_batch_size]``.
        increment (int): Growth per stage, ``>= 1``, dividing ``global_batch_size - start``.
        ramp_samples (int): Consumed samples over which the batch grows, ``>= 0``.
        global_batch_size (int): The batch after the ramp.
    """

    start: int
    increment: int
    ramp_samples: int
    global_batch_size: int

    def __post_init__(self) -> None:
        V.integer("start", self.start, 1)
        V.integer("increment", self.increment, 1)
        V.integer("ramp_samples", self.ramp_samples, 0)
        g = V.integer("global_batch_size", self.global_batch_size, 1)
        if self.start > g:
            raise ValueError(f"start must be an int in [1, global_batch_size={g}], got {self.start}")
        if (g - self.start) % self.increment:
            raise ValueError(f"increment must divide global_batch_size - start = {g} - {self.start} = {g - self.start} "
                             f"(a ramp in whole increments), got {self.increment}")
        for f in _FIELDS:  # numpy ints become plain ints: equality, hashing and JSON stay simple
            object.__setattr__(self, f, int(getattr(self, f)))

    @property
    def num_increments(self) -> int:
        """:math:`n = (G - s) / i`; 0 for a ramp that does not grow."""
        return (self.global_batch_size - self.start) // self.increment

    @cached_property
    def _bounds(self) -> list[int]:
        """:math:`b_k = \\lceil kR/n \\rceil`: stage :math:`k` (batch :math:`s + ik`) holds :math:`c \\in [b_k, b_{k+1})`;
        from :math:`b_n = R` on the batch is :math:`G`. ``[0]`` when there is no ramp."""
        n, r = self.num_increments, self.ramp_samples
        if n == 0 or r == 0:
            return [0]
        return [-(-k * r // n) for k in range(n + 1)]

    def _batch(self, stage: int) -> int:
        n = len(self._bounds) - 1
        return self.global_batch_size if stage == n else self.start + self.increment * stage

    @cached_property
    def _segments(self) -> tuple[list[int], list[int], list[int]]:
        """The trajectory from 0 samples: segment ``j`` starts after ``U[j]`` updates at ``C[j]`` samples and
        consumes ``B[j]`` per update until the next; the last is open-ended."""
        b, us, cs, bs = self._bounds, [], [], []
        u = c = 0
        while True:
            k = bisect.bisect_right(b, c) - 1
            us.append(u)
            cs.append(c)
            bs.append(self._batch(k))
            if k == len(b) - 1:
                return us, cs, bs
            m = -(-(b[k + 1] - c) // bs[-1])  # updates until c reaches the next stage
            u, c = u + m, c + m * bs[-1]

    def batch_size(self, consumed_samples: Any) -> Any:
        """The global batch of the update that starts at ``consumed_samples`` (an int, or an int array)."""
        b = self._bounds
        if np.ndim(consumed_samples) == 0:
            return self._batch(bisect.bisect_right(b, V.step("consumed_samples", consumed_samples)) - 1)
        c = V.steps("consumed_samples", consumed_samples)
        stage = np.searchsorted(np.asarray(b, dtype=np.int64), c, side="right") - 1
        return np.asarray([self._batch(k) for k in range(len(b))], dtype=np.int64)[stage]

    def samples_after(self, updates: Any) -> Any:
        """Consumed samples after ``updates`` updates from 0 (an int, or an int array), each consuming
        :meth:`batch_size` of the samples before it; exact, in O(log n) per value."""
        us, cs, bs = self._segments
        if np.ndim(updates) == 0:
            u = V.step("updates", updates)
            j = bisect.bisect_right(us, u) - 1
            return cs[j] + (u - us[j]) * bs[j]
        u = V.steps("updates", updates)
        j = np.searchsorted(np.asarray(us, dtype=np.int64), u, side="right") - 1
        U, C, B = (np.asarray(a, dtype=np.int64)[j] for a in (us, cs, bs))
        if np.any(u - U > (V.MAX_STEP - C) // B):
            raise ValueError(f"updates must be an int in [0, {self.updates_to(V.MAX_STEP)}] (consumed samples "
                             f"at most 2**62), got {int(u.max())}")
        return C + (u - U) * B

    def updates_to(self, samples: Any) -> Any:
        """The fewest updates after which at least ``samples`` samples are consumed (an int, or an int array):
        the inverse of :meth:`samples_after`."""
        us, cs, bs = self._segments
        if np.ndim(samples) == 0:
            s = V.step("samples", samples)
            j = bisect.bisect_left(cs, s) - 1
            return 0 if j < 0 else us[j] + -(-(s - cs[j]) // bs[j])
        s = V.steps("samples", samples)
        j = np.searchsorted(np.asarray(cs, dtype=np.int64), s, side="left") - 1
        jj = np.maximum(j, 0)
        U, C, B = (np.asarray(a, dtype=np.int64)[jj] for a in (us, cs, bs))
        return np.where(j < 0, 0, U + -(-(s - C) // B))

    def to_spec(self) -> dict[str, int]:
        """The ramp as plain JSON data (checkpoint state, fingerprints)."""
        return asdict(self)

    @classmethod
    def from_spec(cls, spec: Any) -> "BatchRamp":
        """The ramp of :meth:`to_spec`'s dict, checked like the constructor's arguments."""
        if not isinstance(spec, dict) or set(spec) != set(_FIELDS):
            got = sorted(map(str, spec)) if isinstance(spec, dict) else type(spec).__name__
            raise V.ArgumentTypeError(f"spec must be a dict with exactly the keys {list(_FIELDS)}, got {V.short(got)}")
        return cls(**{f.name: spec[f.name] for f in fields(cls)})
