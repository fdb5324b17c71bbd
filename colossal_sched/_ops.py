"""The few elementwise operations a schedule needs, for one step (``math``) or many (``numpy``).

Each schedule writes its formula once against an ``Ops`` namespace: :data:`SCALAR` evaluates it
for one integer step at the cost of a few Python float operations (what ``step()`` pays), and
:data:`VECTOR` for a whole array of steps without a Python loop (what ``lr_table`` uses).
Both evaluate the same expression in the same order and agree bit for bit: ``cos``, ``sqrt`` and the
arithmetic are numpy's and libm's alike, and powers are libm's ``pow`` in both (``np.float_power`` calls it per
element; ``np.power``'s SIMD loop may differ from it by an ulp), so ``lr_table`` equals ``lr_at`` exactly.
"""
from __future__ import annotations

import bisect
import math
import operator
from typing import Any, Callable, Sequence

import numpy as np

from ._validate import MAX_FLOAT


class Ops:
    cos: Callable[[Any], Any]
    sqrt: Callable[[Any], Any]
    """Correctly rounded in both namespaces (IEEE 754), so bit-identical."""
    pow: Callable[[Any, Any], Any]
    minimum: Callable[[Any, Any], Any]
    maximum: Callable[[Any, Any], Any]
    where: Callable[[Any, Any, Any], Any]
    count_le: Callable[[Sequence[int], Any], Any]
    """Number of entries of the sorted sequence that are <= t."""
    ipow: Callable[[float, Any, int], Any]
    """``base ** k`` for integer ``0 <= k <= kmax``."""
    floordiv: Callable[[Any, int], Any]
    """``t // d`` for integer steps ``t`` (as int64 in the vector case: float floor division is slow)."""


SCALAR = Ops()
SCALAR.cos = math.cos
SCALAR.sqrt = math.sqrt
SCALAR.pow = math.pow
SCALAR.minimum = min
SCALAR.maximum = max
SCALAR.where = lambda cond, a, b: a if cond else b
SCALAR.count_le = bisect.bisect_right
SCALAR.ipow = lambda base, k, kmax: math.pow(base, k)
SCALAR.floordiv = operator.floordiv

VECTOR = Ops()
VECTOR.cos = np.cos
VECTOR.sqrt = np.sqrt
VECTOR.minimum = np.minimum
VECTOR.maximum = np.maximum
VECTOR.where = np.where
VECTOR.count_le = lambda seq, t: np.searchsorted(np.asarray(seq, dtype=np.float64), t, side="right")


def _pow(base: float, k: int) -> float:
    """libm's ``pow``, with ``inf`` for an overflow (``math.pow`` raises)."""
    try:
        return math.pow(base, k)
    except OverflowError:
        return math.inf


def power_overflow(gamma: float, kmax: int, bases: Sequence[float]) -> int | None:
    """The smallest ``k <= kmax`` where ``gamma ** k`` or ``base * gamma ** k`` (as the schedules
    compute it) is not finite for some base, or None: a bisection, as both grow with ``k`` for ``gamma > 1``."""
    top = max(bases, default=0.0)

    def bad(k: int) -> bool:
        p = _pow(gamma, k)
        return not (p <= MAX_FLOAT and top * p <= MAX_FLOAT)

    if gamma <= 1.0 or not bad(kmax):
        return None
    lo, hi = 0, kmax  # bad(hi), and not bad(0) since gamma**0 == 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if bad(mid) else (mid, hi)
    return hi


def _vector_pow(x: Any, y: float) -> Any:
    """libm's ``x ** y`` for each element of ``x`` (bit-identical to :data:`SCALAR`)."""
    if np.ndim(x) == 0:
        return math.pow(x, y)
    if y == 1.0:  # exact in both
        return np.array(x, dtype=np.float64)
    return np.float_power(np.asarray(x, dtype=np.float64), y)


def _vector_ipow(base: float, k: Any, kmax: int) -> Any:
    """``base ** k`` by libm's ``pow``, ``inf`` for an overflow (bit-identical to :data:`SCALAR`); one ``pow`` per
    power ``k`` spans where they repeat (staircases)."""
    k = np.asarray(k, dtype=np.int64)  # no copy when k is already int64
    if not k.size:
        return np.empty(0)
    lo, hi = int(k.min()), int(k.max())
    with np.errstate(over="ignore"):
        if hi - lo >= k.size // 2:  # mostly distinct powers: one pow each
            return np.float_power(base, k)
        table = np.float_power(base, np.arange(lo, hi + 1, dtype=np.int64))
    return table[k - lo] if lo else table[k]


VECTOR.pow = _vector_pow
VECTOR.ipow = _vector_ipow
VECTOR.floordiv = lambda t, d: np.asarray(t).astype(np.int64) // d


def progress(ops: Ops, u: Any, length: float) -> Any:
    """Fraction ``clip(u / length, 0, 1)`` of a phase done; a phase of length 0 is done."""
    if length <= 0:
        return 1.0
    return ops.maximum(ops.minimum(u, length) / length, 0.0)

