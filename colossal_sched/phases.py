"""Phases: the shapes a schedule is made of (:mod:`~colossal_sched.plan` joins them, learned from optax).

A :class:`Phase` is one shape over a local count :math:`u \\in [0, L]` (``L = length``), written
once against an :class:`~colossal_sched._ops.Ops` namespace, so the same definition serves
``lr_at``/``step()`` (one step) and ``lr_table`` (an array of steps). It maps each param group's
*peak* (the level it starts from: the base lr, or the lr a re-plan continues from) to an lr:

=================  =======================================================================
``Warmup``         :math:`\\frac{u + 1}{W}\\,\\mathrm{peak}` (ColossalAI's convention)
``Constant``       :math:`\\mathrm{peak}`
``Linear``         :math:`e + (\\mathrm{peak} - e)\\,\\frac{L - u}{L}`
``Cosine``         :math:`e + (\\mathrm{peak} - e)\\,\\frac{1 + \\cos(\\pi u / L)}{2}`
``Polynomial``     :math:`e + (\\mathrm{peak} - e)\\,(1 - u / L)^{p}`
``OneMinusSqrt``   :math:`e + (\\mathrm{peak} - e)\\,(1 - \\sqrt{u / L})`
``Exponential``    :math:`\\mathrm{peak}\\cdot\\gamma^{u}`
``Steps``          :math:`\\mathrm{peak}\\cdot\\gamma^{\\lfloor u / s \\rfloor}`
``Milestones``     :math:`\\mathrm{peak}\\cdot\\gamma^{|\\{m \\le u\\}|}`
``InverseSqrt``    :math:`\\max(e, \\mathrm{peak}\\sqrt{\\tau / (u + \\tau)})`
``Restarts``       cosine cycles :math:`L_i = \\lfloor L_0 m^i \\rfloor` with peaks :math:`\\mathrm{peak}\\cdot d^i`
``Product``        :math:`\\mathrm{peak}\\cdot\\prod_k f_k(u)` (each factor a phase from peak 1)
=================  =======================================================================

``e`` (``end_lr``/``min_lr``) is an absolute lr. The four decays to ``e`` are one :class:`Decay`, each a shape
:math:`g(u)` from 1 to 0. A new phase is a frozen dataclass here; with a ``kind`` and :func:`key` fields (each
key's default and check, declared once) it is a ``ComposedLR`` spec type too (``SPEC_TYPES``).

:func:`join` places phases at boundaries: phase :math:`i` is active for :math:`b_{i-1} \\le t < b_i` at local count :math:`u = t - b_{i-1}`
(clamped to :math:`[0, L_i]`, so a phase past its length holds its end value and a phase of
length 0 is at its end value).
"""
from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from . import _validate as V
from ._ops import SCALAR, Ops

Levels = Sequence[float]

#: every phase type a spec may name (``ComposedLR``), by ``kind``, in the order the classes are defined
SPEC_TYPES: dict[str, type["Phase"]] = {}


def key(default: Any, check: Callable[[str, Any], Any], required: bool = False) -> Any:
    """A dataclass field a spec may set: its default and its check, ``check(name, value)`` (``required``: no default
    in a spec). :func:`spec_keys` reads them: a phase's keys are declared once, here."""
    return field(default=default, metadata={"check": check, "required": required})


def spec_keys(cls: type["Phase"]) -> dict[str, tuple[Any, Callable[[str, Any], Any]]]:
    """``{key: (default, check)}`` of a spec type, from its dataclass fields (a required key's default is None)."""
    return {f.name: (None if f.metadata["required"] else f.default, f.metadata["check"])
            for f in dataclasses.fields(cls) if "check" in f.metadata}


def _lr(name: str, v: Any) -> float:
    return V.real(name, v, low=0.0)


def _positive(name: str, v: Any) -> float:
    return V.real(name, v, low=0.0, low_open=True)


@dataclass(frozen=True)
class Phase:
    """One shape of a schedule over ``length`` steps; subclasses implement :meth:`lrs`. A subclass with a
    ``kind`` is a phase type of specs (``ComposedLR``), its :func:`key` fields the spec's keys."""

    length: int
    kind: ClassVar[str] = ""
    warmup: ClassVar[bool] = False
    in_specs: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind and cls.in_specs and "kind" in cls.__dict__:
            SPEC_TYPES[cls.kind] = cls

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        """Per-group lr at local count(s) ``u`` (already clamped to ``[0, length]``): a float, or an array
        like ``u`` (a float there stands for the same value at every step)."""
        raise NotImplementedError

    def rest(self, u0: int, length: int, levels: Levels) -> Phase:
        """What a re-plan puts in place of this phase from local count ``u0`` on, over ``length``
        steps, continuing from ``levels`` (the lr of each group at ``u0``). Shapes fitted to their
        length are re-fitted from ``levels`` to their end lr."""
        return Anchored(length, replace(self, length=length), tuple(levels))

    def resized(self, length: int) -> Phase:
        """This phase over ``length`` steps instead (a later phase of a re-planned schedule)."""
        return replace(self, length=length)

    def marks(self) -> list[tuple[str, int]]:
        """``(label, local step)`` of notable points inside the phase (milestones, restarts)."""
        return []

    def critical(self) -> set[int]:
        """Local counts where the lr can take its extreme values over ``[0, length]``: the ends, where the
        phase is monotone (every shape but restarts; products and wrappers collect their parts')."""
        return {0, self.length}


@dataclass(frozen=True)
class Warmup(Phase):
    """ColossalAI's linear warmup :math:`\\frac{u + 1}{W}\\,\\mathrm{peak}` (``denominator`` replaces
    :math:`W`: LinearWarmupLR uses :math:`W + 1`)."""

    denominator: int = 0
    kind: ClassVar[str] = "warmup"
    warmup: ClassVar[bool] = True

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        n = self.denominator or self.length
        warm = ops.minimum((u + 1) / n, 1.0) if n else 1.0  # at its end (u = W, or length 0): the peak
        return [warm * p for p in peaks]


@dataclass(frozen=True)
class Constant(Phase):
    """The peak, unchanged."""

    kind: ClassVar[str] = "constant"

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        return list(peaks)  # a scalar per group: broadcast over the phase's steps by join


@dataclass(frozen=True)
class Decay(Phase):
    """From the peak to ``end_lr``: :math:`e + (\\mathrm{peak} - e)\\,g(u)`, the shape :math:`g` going from 1 at
    :math:`u = 0` to 0 at :math:`u = L` (each subclass is one shape: its :meth:`shape`)."""

    end_lr: float = key(0.0, _lr)

    def shape(self, ops: Ops, u: Any) -> Any:
        """:math:`g` at local count(s) ``u`` in ``[0, L]`` (0 where ``L = 0``)."""
        raise NotImplementedError

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        e, g = self.end_lr, self.shape(ops, u)
        return [e + (p - e) * g for p in peaks]


@dataclass(frozen=True)
class Linear(Decay):
    """:math:`g = (L - u) / L`."""

    kind: ClassVar[str] = "linear"

    def shape(self, ops: Ops, u: Any) -> Any:
        n = self.length
        return (n - u) / n if n else 0.0


@dataclass(frozen=True)
class Cosine(Decay):
    """:math:`g = \\frac{1 + \\cos(\\pi u / L)}{2}`."""

    kind: ClassVar[str] = "cosine"

    def shape(self, ops: Ops, u: Any) -> Any:  # torch's closed form writes pi * u / L: the same bits
        n = self.length
        return (1.0 + ops.cos(math.pi * u / n)) / 2.0 if n else 0.0


@dataclass(frozen=True)
class Polynomial(Decay):
    """:math:`g = (1 - u / L)^{p}`."""

    power: float = key(1.0, _positive)
    kind: ClassVar[str] = "polynomial"

    def shape(self, ops: Ops, u: Any) -> Any:
        n = self.length
        return ops.pow(1 - (u / n if n else 1.0), self.power)


@dataclass(frozen=True)
class OneMinusSqrt(Decay):
    """The "1-sqrt" cooldown: :math:`g = 1 - \\sqrt{u / L}`."""

    kind: ClassVar[str] = "1-sqrt"

    def shape(self, ops: Ops, u: Any) -> Any:
        n = self.length
        return 1.0 - ops.sqrt(u / n if n else 1.0)


@dataclass(frozen=True)
class Exponential(Phase):
    """:math:`\\mathrm{peak}\\cdot\\gamma^{u}`; a re-plan keeps its end value: :math:`\\gamma' = \\gamma^{R/L'}`."""

    gamma: float = key(1.0, _positive)
    kind: ClassVar[str] = "exponential"

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        factor = ops.ipow(self.gamma, u, self.length)
        return [p * factor for p in peaks]

    def rest(self, u0: int, length: int, levels: Levels) -> Phase:
        gamma = self.gamma ** ((self.length - u0) / length) if length else 1.0
        return Anchored(length, Exponential(length, gamma), tuple(levels))

    def resized(self, length: int) -> Phase:
        return Exponential(length, self.gamma ** (self.length / length) if length else self.gamma)


@dataclass(frozen=True)
class _Staircase(Phase):
    """Shapes a re-plan stretches in time (their decays move proportionally, the end value stays)."""

    def rest(self, u0: int, length: int, levels: Levels) -> Phase:
        return Warped(length, self, u0, self.length - u0, max(length, 1))

    def resized(self, length: int) -> Phase:
        return Warped(length, self, 0, self.length, max(length, 1))


@dataclass(frozen=True)
class Steps(_Staircase):
    """:math:`\\mathrm{peak}\\cdot\\gamma^{\\lfloor u / s \\rfloor}` (StepLR)."""

    step_size: int = key(1, lambda name, v: V.integer(name, v, 1))
    gamma: float = key(0.1, _positive)
    kind: ClassVar[str] = "steps"

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        factor = ops.ipow(self.gamma, ops.floordiv(u, self.step_size), self.length // self.step_size)
        return [p * factor for p in peaks]


@dataclass(frozen=True)
class Milestones(_Staircase):
    """:math:`\\mathrm{peak}\\cdot\\gamma^{|\\{m \\in \\mathrm{milestones} : m \\le u\\}|}` (local milestones)."""

    milestones: tuple[int, ...] = key((), lambda name, v: V.milestones(v), required=True)
    gamma: float = key(0.1, _positive)
    kind: ClassVar[str] = "milestones"

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        factor = ops.ipow(self.gamma, ops.count_le(self.milestones, u), len(self.milestones))
        return [p * factor for p in peaks]

    def marks(self) -> list[tuple[str, int]]:
        return [("milestone", m) for m in self.milestones if m <= self.length]


@dataclass(frozen=True)
class _Continuing(Phase):
    """Shapes not fitted to their length: a re-plan continues the same curve to the new end."""

    def rest(self, u0: int, length: int, levels: Levels) -> Phase:
        return Warped(length, replace(self, length=u0 + length), u0, 1, 1)


@dataclass(frozen=True)
class InverseSqrt(_Continuing):
    """:math:`\\max(e, \\mathrm{peak}\\sqrt{\\tau / (u + \\tau)})`."""

    timescale: float = key(1.0, _positive)
    min_lr: float = key(0.0, _lr)
    kind: ClassVar[str] = "inverse_sqrt"

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        tau, lo = self.timescale, self.min_lr
        factor = ops.sqrt(tau / (u + tau))
        if ops is SCALAR:  # max(lo, x) without the call: x where x > lo, else lo
            return [p * factor if p * factor > lo else lo for p in peaks]
        return [ops.maximum(lo, p * factor) for p in peaks]


#: the most cycles a :class:`Restarts` with ``cycle_mult != 1`` may start before its end (their starts are kept)
MAX_CYCLES = 10**6


@dataclass(frozen=True)
class Restarts(_Continuing):
    """Cosine cycles with warm restarts (SGDR). Cycle :math:`i` lasts :math:`L_i = \\lfloor L_0 m^i \\rfloor`
    steps and peaks at :math:`\\mathrm{peak}\\cdot d^i`; at offset :math:`v` in it: :math:`\\frac{v + 1}{W}p_i`
    for :math:`v < W`, then :math:`e + (p_i - e)\\frac{1 + \\cos(\\pi (v - W) / (L_i - W))}{2}`.

    The cycle of a step is found by integer division (:math:`m = 1`) or by bisection in the cycle starts
    (computed once), so any step costs O(log cycles); a step in the last step's cycle reuses it (:meth:`_cycle_at`).
    """

    first_cycle_steps: int = key(1, lambda name, v: V.integer(name, v, 1), required=True)
    cycle_mult: float = key(1.0, lambda name, v: V.real(name, v, low=1.0))
    cycle_decay: float = key(1.0, _positive)
    warmup_steps: int = key(0, lambda name, v: V.integer(name, v, 0))
    eta_min: float = key(0.0, _lr)
    kind: ClassVar[str] = "restarts"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_last", (0, 0, 1, 1.0))  # the last step's _cycle_at (none yet: an empty range)
        if self.cycle_mult != 1.0:
            self._cycles  # noqa: B018  (refuses too many cycles now, not at the first lr_at)

    @cached_property
    def _cycles(self) -> tuple[list[int], list[float]]:
        """Start of every cycle that begins at or before ``length`` (``cycle_mult != 1``) and each one's
        ``L_i - W`` as a float (``inf`` where :math:`L_0 m^i` overflows: past the end, only its first steps count).
        Cycles that start after ``length`` are never generated, and at most :data:`MAX_CYCLES` are: more is refused."""
        first, mult, w = self.first_cycle_steps, self.cycle_mult, self.warmup_steps
        starts, spans, start, i = [0], [], 0, 0
        while True:
            try:
                n: int | float = int(first * mult**i)
            except OverflowError:  # L_0 * m^i past the float range: this cycle runs past any step
                n = math.inf
            spans.append(float(n - w) if n < 2**1023 else math.inf)
            start += n
            i += 1
            if start > self.length:
                return starts, spans
            if i >= MAX_CYCLES:
                raise ValueError(
                    f"first_cycle_steps={first} with cycle_mult={mult!r} makes more than {MAX_CYCLES} cycles before step "
                    f"{self.length} (total_steps): at most {MAX_CYCLES} are allowed with cycle_mult != 1; use a larger "
                    "first_cycle_steps or cycle_mult, or cycle_mult=1.0 (any number of cycles)"
                )
            starts.append(int(start))

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self._cycles[0], dtype=np.int64), np.asarray(self._cycles[1], dtype=np.float64)

    def _cycle(self, ops: Ops, u: Any) -> tuple[Any, Any, Any, int]:
        """Cycle index, offset in it, ``L_i - W`` and the largest index (for ``ipow``) of counts (one: :meth:`_cycle_at`)."""
        first = self.first_cycle_steps
        if self.cycle_mult == 1.0:
            i = ops.floordiv(u, first)
            return i, u - i * first, first - self.warmup_steps, self.length // first
        starts, spans = self._arrays
        i = np.searchsorted(starts, u, side="right") - 1
        return i, u - starts[i], spans[i], len(starts) - 1


    def _cycle_at(self, u: int) -> tuple[int, float, Any, float]:
        """One step's cycle: its start, the next one's (``inf`` after the last), ``L_i - W`` and the peak factor
        ``d^i`` (:meth:`lrs` keeps the last: a step in the same cycle needs no division, bisection or ``pow``)."""
        first, d = self.first_cycle_steps, self.cycle_decay
        if self.cycle_mult == 1.0:
            i = u // first
            return i * first, (i + 1) * first, first - self.warmup_steps, math.pow(d, i)
        starts, spans = self._cycles
        i = bisect.bisect_right(starts, u) - 1
        return starts[i], starts[i + 1] if i + 1 < len(starts) else math.inf, spans[i], math.pow(d, i)

    def critical(self) -> set[int]:
        """Local counts where the lr can take its extreme values: the ends, and the peak (end of the warmup)
        of the first and of the last two cycles before ``length`` (the peaks shrink or grow with ``cycle_decay``)."""
        L, w, first = self.length, self.warmup_steps, self.first_cycle_steps
        k = L // first
        starts = [0] + ([s * first for s in (k - 1, k) if s > 0] if self.cycle_mult == 1.0 else self._cycles[0][-2:])
        return {0, L} | {min(s + d, L) for s in starts for d in (w - 1, w) if s + d >= 0}

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        w, lo = self.warmup_steps, self.eta_min
        if ops is SCALAR:  # step()'s path: the operations below, without the namespace's calls
            start, stop, n, decay = self._last
            if not start <= u < stop:  # another cycle than the last step's
                start, stop, n, decay = cycle = self._cycle_at(u)
                object.__setattr__(self, "_last", cycle)
            v = u - start  # below: shape * d^i (exact where d^i is 1.0)
            c = 0.0 if v < w else 0.5 + 0.5 * math.cos((v - w) * (math.pi / n) if self.cycle_mult == 1.0 else math.pi * (v - w) / n)
            shape, floor = ((v + 1) / w * decay, 0.0) if v < w else (c * decay, lo - lo * c if lo else 0.0)
            out = []
            for p in peaks:  # a loop: a comprehension costs a call (CPython 3.11)
                out.append(p * shape + floor)
            return out
        i, v, n, kmax = self._cycle(ops, u)
        x = ops.maximum(v - w, 0) if w else v
        c = 0.5 + 0.5 * ops.cos(x * (math.pi / n) if self.cycle_mult == 1.0 else math.pi * x / n)
        # lr = p_i * shape + floor: shape = (v + 1) / W in the warmup, else c; floor = eta_min * (1 - c) after it
        shape, floor = c, (lo - lo * c if lo else 0.0)
        if w:
            warming = v < w
            shape = ops.where(warming, (v + 1) / w, c)
            floor = ops.where(warming, 0.0, floor) if lo else 0.0
        if self.cycle_decay != 1.0:
            shape = shape * ops.ipow(self.cycle_decay, i, kmax)
        return [p * shape + floor for p in peaks]

    def marks(self) -> list[tuple[str, int]]:
        first = self.first_cycle_steps
        starts = range(first, self.length + 1, first) if self.cycle_mult == 1.0 else self._cycles[0][1:]
        return [("restart", s) for s in starts[:64]]


@dataclass(frozen=True)
class Product(_Staircase):
    """:math:`\\mathrm{peak}\\cdot\\prod_k f_k(u)`, each factor :math:`f_k` a phase evaluated from peak 1
    (what torch's ``ChainedScheduler`` does with multiplicative schedulers, as data)."""

    factors: tuple[Phase, ...] = key((), None, required=True)  # each factor is itself a spec (composed.normalize)
    kind: ClassVar[str] = "product"

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        f: Any = 1.0
        for factor in self.factors:
            f = f * factor.lrs(ops, u, (1.0,))[0]
        return [p * f for p in peaks]

    def critical(self) -> set[int]:
        """Every factor's: between them each factor is monotone."""
        return {0, self.length}.union(*(f.critical() for f in self.factors))


# ------------------------------------------------------------ re-plan wrappers
@dataclass(frozen=True)
class _Wrapper(Phase):
    """``inner`` from other peaks, over the same counts: its critical counts, and a re-plan re-fits ``inner``."""

    inner: Phase = field(default_factory=lambda: Constant(0))

    def critical(self) -> set[int]:
        return {0, self.length} | {u for u in self.inner.critical() if u <= self.length}

    def rest(self, u0: int, length: int, levels: Levels) -> Phase:
        return self.inner.rest(u0, length, levels)


@dataclass(frozen=True)
class Anchored(_Wrapper):
    """``inner`` from fixed per-group ``levels`` instead of the peaks it is given."""

    levels: tuple[float, ...] = ()

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        return self.inner.lrs(ops, u, self.levels)

    def resized(self, length: int) -> Phase:
        return Anchored(length, self.inner.resized(length), self.levels)


@dataclass(frozen=True)
class Warped(_Staircase):
    """``inner`` at local count :math:`u_0 + \\lfloor u \\cdot a / b \\rfloor`: shifted (``a = b = 1``) or stretched."""

    inner: Phase = field(default_factory=lambda: Constant(0))
    offset: int = 0
    num: int = 1
    den: int = 1

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        if self.num == self.den:
            return self.inner.lrs(ops, u + self.offset, peaks)
        if ops is SCALAR:
            return self.inner.lrs(ops, self.offset + u * self.num // self.den, peaks)
        return self.inner.lrs(ops, self.offset + _muldiv(u, self.num, self.den), peaks)

    def critical(self) -> set[int]:
        """The counts ``u`` around each critical count ``v`` of ``inner``: ``offset + u * num // den`` is monotone
        in ``u``, so the floor and the ceiling of its inverse at ``v`` are where it reaches ``v``."""
        out = {0, self.length}
        if not self.num:  # every u at the same count: constant
            return out
        for v in self.inner.critical():
            if v >= self.offset:
                lo = (v - self.offset) * self.den // self.num
                out.update(min(x, self.length) for x in (lo, lo + 1))
        return out

    def marks(self) -> list[tuple[str, int]]:
        if self.num != self.den or not self.inner.marks():
            return []
        return [(what, s - self.offset) for what, s in self.inner.marks() if self.offset < s <= self.offset + self.length]


def _muldiv(u: Any, num: int, den: int) -> np.ndarray:
    """``u * num // den`` for an array of integer counts ``u``, exactly (as Python ints do it): in int64 while
    ``u * num`` fits, else elementwise in Python ints (a stretch of counts past ~2**62 / num)."""
    ui = np.asarray(u).astype(np.int64)
    if not ui.size or int(ui.max()) * num < 2**63:
        return ui * num // den
    return (ui.astype(object) * num // den).astype(np.int64)


@dataclass(frozen=True)
class Scaled(_Wrapper):
    """``inner`` from ``scale`` times the peaks."""

    scale: float = 1.0

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        return self.inner.lrs(ops, u, [p * self.scale for p in peaks])

    def resized(self, length: int) -> Phase:
        return Scaled(length, self.inner.resized(length), self.scale)

    def marks(self) -> list[tuple[str, int]]:
        return self.inner.marks()
