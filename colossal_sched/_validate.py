"""Argument checks shared by every scheduler: each names the argument and what is allowed."""
from __future__ import annotations

import math
import sys
from numbers import Integral, Real
from typing import Any, Iterable, Mapping, Sequence


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type.

    It is a ``TypeError`` and, like torch's own schedulers raise for the same mistakes
    (``OneCycleLR(total_steps=1.5)``), a ``ValueError``, so either ``except`` catches it.
    """


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def integer(name: str, value: Any, minimum: int) -> int:
    """``value`` as an ``int`` that is ``>= minimum``."""
    if not _is_int(value):
        raise ArgumentTypeError(f"{name} must be an int >= {minimum}, got {short(value)} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


MAX_FLOAT = sys.float_info.max
"""The largest finite float: every lr must lie in ``[0, MAX_FLOAT]``."""

MAX_STEP = 1 << 62
"""The largest step any entry point accepts: it travels exactly in one int64 across ranks."""


def step(name: str, value: Any, minimum: int = 0) -> int:
    """A step counter as a plain ``int`` in ``[minimum, 2**62]``: the one validator for every step.

    Python ints and numpy/torch integer scalars (a 0-d integer tensor too) are converted to ``int``;
    bools, floats (``7.0`` included), NaN, negatives, larger values and non-scalars are refused,
    naming ``name`` and what is allowed.
    """
    if type(value) is int and minimum <= value <= MAX_STEP:  # the common case, kept cheap
        return value
    allowed = f"an int in [{minimum}, 2**62]"
    v = value
    if isinstance(v, bool) or (hasattr(v, "dtype") and str(getattr(v, "dtype", "")) in ("bool", "torch.bool")):
        raise ArgumentTypeError(f"{name} must be {allowed}, got {value!r} (bool)")
    if hasattr(v, "ndim") and hasattr(v, "dtype") and not isinstance(v, Integral):  # numpy array / torch tensor
        is_int_dtype = getattr(v, "is_floating_point", None)
        if getattr(v, "ndim", 1) != 0:
            raise ArgumentTypeError(f"{name} must be {allowed} (a scalar), got an array of shape {tuple(v.shape)}")
        if is_int_dtype is not None:  # torch
            if v.is_floating_point() or v.is_complex():
                raise ArgumentTypeError(f"{name} must be {allowed}, got a {v.dtype} tensor")
        elif v.dtype.kind not in "iu":
            raise ArgumentTypeError(f"{name} must be {allowed}, got a {v.dtype} array")
        v = int(v.item())
    if not _is_int(v):
        raise ArgumentTypeError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    v = int(v)
    if v < minimum or v > MAX_STEP:
        raise ValueError(f"{name} must be {allowed}, got {v}")
    return v


def steps(name: str, values: Any) -> Any:
    """Many steps as a 1-D int64 numpy array, each in ``[0, 2**62]`` (:func:`step`, element-wise).

    Integer dtypes only: a float array (``[1.0, 2.0]`` too), bools and objects are refused.
    """
    import numpy as np

    allowed = "a 1-D sequence of ints in [0, 2**62]"
    if isinstance(values, range):
        if values.start < 0 or values.stop - values.step > MAX_STEP + 1:
            raise ValueError(f"{name} must be {allowed}, got {values}")
        return np.arange(values.start, values.stop, values.step, dtype=np.int64)
    if isinstance(values, (str, bytes, Mapping)) or not (hasattr(values, "__len__") or isinstance(values, Iterable)):
        raise ArgumentTypeError(f"{name} must be {allowed}, got {short(values)} ({type(values).__name__})")
    try:
        t = np.asarray(values if hasattr(values, "dtype") else list(values))
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise ArgumentTypeError(f"{name} must be {allowed}: {short(e)}") from None
    if t.ndim != 1:
        raise ArgumentTypeError(f"{name} must be {allowed}, got shape {t.shape}")
    if t.size == 0:
        return t.astype(np.int64)
    if t.dtype.kind not in "iu":
        raise ArgumentTypeError(f"{name} must be {allowed}, got dtype {t.dtype} (e.g. {short(t[0])})")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi > MAX_STEP:
        raise ValueError(f"{name} must be {allowed}, got {lo if lo < 0 else hi}")
    return t.astype(np.int64, copy=False)


def short(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages about untrusted data."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__, or one too deep to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text)} chars)"


def real(name: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
         high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (``(low`` with ``low_open``, ``high)`` with ``high_open``)."""
    lo = "-inf" if low is None else repr(float(low))
    hi = "inf)" if high is None else repr(float(high)) + (")" if high_open else "]")
    allowed = f"{'(' if low_open or low is None else '['}{lo}, {hi}"
    if not isinstance(value, Real) or isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be a finite float in {allowed}, got {short(value)} ({type(value).__name__})")
    try:
        value = float(value)
    except OverflowError:  # an int or Fraction past the floats
        raise ValueError(f"{name} must be a finite float in {allowed}, got {short(value)}") from None
    if not math.isfinite(value) or (low is not None and (value < low or (low_open and value == low))) or (
            high is not None and (value > high or (high_open and value == high))):
        raise ValueError(f"{name} must be a finite float in {allowed}, got {value}")
    return value


def choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be True or False, got {value!r}")
    return value


def warmup(warmup_steps: Any, total_steps: int, *, decay_follows: bool) -> int:
    """``warmup_steps`` in ``[0, total_steps]``, or ``[0, total_steps)`` when a decay phase must follow."""
    high = total_steps - 1 if decay_follows else total_steps
    w = integer("warmup_steps", warmup_steps, 0)
    if w > high:
        why = " so that a decay phase follows" if decay_follows else ""
        raise ValueError(f"warmup_steps must be an int in [0, {high}] (total_steps={total_steps}){why}, got {w}")
    return w


def milestones(value: Any, warmup_steps: int = 0) -> list[int]:
    """A non-empty, strictly increasing list of ints, none inside the warmup."""
    if value is None:
        raise ValueError("milestones is required: a non-empty, strictly increasing list of step indices")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ArgumentTypeError(f"milestones must be a list of ints, got {value!r}")
    ms = list(value)
    if not ms:
        raise ValueError("milestones must be a non-empty, strictly increasing list of step indices, got []")
    for m in ms:
        if not _is_int(m):
            raise ArgumentTypeError(f"milestones must hold ints, got {m!r} in {ms}")
    if ms[0] < 0:
        raise ValueError(f"milestones must be >= 0, got {ms}")
    if any(b <= a for a, b in zip(ms, ms[1:])):
        raise ValueError(f"milestones must be strictly increasing, got {ms}")
    if ms[0] < warmup_steps:
        raise ValueError(f"milestones must be >= warmup_steps={warmup_steps} (none inside the warmup), got {ms}")
    return [int(m) for m in ms]


def unknown_kwargs(cls_name: str, kwargs: dict, accepted: Iterable[str]) -> None:
    """Reject keyword arguments that ColossalAI would silently swallow."""
    accepted = sorted(accepted)
    bad = sorted(set(kwargs) - set(accepted))
    if bad:
        raise TypeError(f"{cls_name} got unexpected keyword argument(s) {bad}; besides its named parameters it accepts "
                        f"only {accepted}")
