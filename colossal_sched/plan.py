"""Phases placed on the step axis (:func:`join`, as optax's ``join_schedules``), re-plans, and
:class:`PhasedLR`: a scheduler whose curve is a plan of :mod:`~colossal_sched.phases`."""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from . import _validate as V
from ._ops import SCALAR, Ops
from .base import ClosedFormLR
from .errors import ReplanError
from .phases import Anchored, Levels, Phase, Scaled, Warmup, Warped
from .plateau import metric_value, plateau_of

#: steps a table evaluates at once: each temporary array stays in the CPU cache
CHUNK = 1 << 14

@dataclass(frozen=True)
class Joined:
    """Phases placed on the step axis: ``phases[i]`` is active from ``starts[i]`` (``starts[0] = 0``)
    at local count ``t - origins[i]`` (``origins[i] <= starts[i]``; they differ only after a re-plan)."""

    phases: tuple[Phase, ...]
    starts: tuple[int, ...]
    origins: tuple[int, ...]

    def lrs(self, ops: Ops, t: Any, peaks: Levels) -> list[Any]:
        """Per-group lr at step(s) ``t``."""
        if ops is SCALAR:
            i = bisect.bisect_right(self.starts, t) - 1 if len(self.starts) > 1 else 0
            phase = self.phases[i]
            u = t - self.origins[i]
            return phase.lrs(ops, u if u < phase.length else phase.length, peaks)
        # each phase is evaluated only on its own steps (slices of a sorted array, else a selection), in chunks
        # that stay in the cache, written straight into the table's rows
        t = np.asarray(t)
        out = np.empty((len(peaks), t.size))
        ordered = t.size < 2 or bool((t[1:] >= t[:-1]).all())
        if ordered:
            edges = np.searchsorted(t, self.starts[1:], side="left").tolist()
            parts: list[Any] = [range(a, b) for a, b in zip([0] + edges, edges + [t.size])]
        else:
            index = np.searchsorted(np.asarray(self.starts), t, side="right") - 1
            parts = [np.flatnonzero(index == i) for i in range(len(self.phases))]
        for phase, origin, part in zip(self.phases, self.origins, parts):
            for c in range(0, len(part), CHUNK):
                at = slice(part[c], part[min(c + CHUNK, len(part)) - 1] + 1) if ordered else part[c:c + CHUNK]
                u = t[at] - origin if origin else t[at]
                if not ordered or u[-1] > phase.length:  # past its length: held at its end
                    u = ops.minimum(u, phase.length)
                for row, lr in zip(out, phase.lrs(ops, u, peaks)):
                    row[at] = lr
        return out

    def end(self) -> int:
        """The step where the last phase reaches its end."""
        return self.origins[-1] + self.phases[-1].length

    def index(self, t: int) -> int:
        return bisect.bisect_right(self.starts, t) - 1

    def marks(self) -> list[tuple[str, int]]:
        """``(label, step)``: where each phase starts (or the warmup ends) and the marks inside phases."""
        out = []
        stops = self.starts[1:] + (self.end() + 1,)
        for i, (phase, start, origin, stop) in enumerate(zip(self.phases, self.starts, self.origins, stops)):
            if origin < start:
                out.append(("re-plan", origin))
            elif i:
                out.append(("warmup end" if self.phases[i - 1].warmup else f"{_label(phase)} start", start))
            out.extend((what, origin + s) for what, s in phase.marks() if start <= origin + s < stop and s > 0)
        return out


DECAYS = ("linear", "cosine", "polynomial", "1-sqrt", "exponential", "steps", "milestones", "inverse_sqrt")


def _label(phase: Phase) -> str:
    while isinstance(phase, (Anchored, Scaled, Warped)):
        phase = phase.inner
    return "decay" if phase.kind in DECAYS else phase.kind or type(phase).__name__.lower()


def join(phases: Sequence[Phase], boundaries: Sequence[int]) -> Joined:
    """Phases one after another, as optax's ``join_schedules``: ``phases[i + 1]`` starts at
    ``boundaries[i]``, with its local count starting from 0 there.

    ``boundaries`` must be ``len(phases) - 1`` strictly increasing ints ``>= 1``; a phase of length
    0 before another is dropped (it is never active).
    """
    phases, boundaries = list(phases), list(boundaries)
    if not phases or not all(isinstance(p, Phase) for p in phases):
        raise V.ArgumentTypeError(f"phases must be a non-empty list of Phase, got {phases!r}")
    if len(boundaries) != len(phases) - 1:
        raise ValueError(f"boundaries must hold len(phases) - 1 = {len(phases) - 1} steps, got {len(boundaries)}: {boundaries}")
    for b in boundaries:
        V.integer("boundaries", b, 1)
    if any(b <= a for a, b in zip(boundaries, boundaries[1:])):
        raise ValueError(f"boundaries must be strictly increasing, got {boundaries}")
    starts = [0] + boundaries
    return Joined(tuple(phases), tuple(starts), tuple(starts))


def warmup_then(warmup_steps: int, *phases: Phase) -> tuple[list[Phase], list[int]]:
    """``phases`` one after another, after ColossalAI's warmup of ``warmup_steps``: the ``(phases,
    boundaries)`` that :func:`join` takes (phases of length 0 before the last are left out)."""
    out = [p for p in [Warmup(warmup_steps), *phases[:-1]] if p.length] + [phases[-1]]
    bounds, at = [], 0
    for p in out[:-1]:
        at += p.length
        bounds.append(at)
    return out, bounds


# ------------------------------------------------------------------ re-plan
def replanned(plan: Joined, at_step: int, total_steps: int, base_lrs: Levels, tail: Any = None) -> Joined:
    """``plan`` re-planned at ``at_step`` to end at ``total_steps``.

    Unchanged up to ``at_step`` (bit for bit). The active phase continues from its lr at
    ``at_step`` over its new length (:meth:`Phase.rest`); the later ones follow with lengths
    scaled by :math:`(T' - s) / (T - s)` (``tail(lengths)`` may decide them instead). Inside a
    warmup it is refused.
    """
    s, end = at_step, plan.end()
    k = plan.index(s)
    phase, origin = plan.phases[k], plan.origins[k]
    if phase.warmup and s - origin < phase.length:
        raise ReplanError(
            f"at_step={s} is inside the warmup (steps {plan.starts[k]}..{origin + phase.length - 1}): "
            f"re-plan at a step >= {origin + phase.length}"
        )
    levels = plan.lrs(SCALAR, s, base_lrs)
    # remaining lengths of the active phase and the later ones (later ones end at `end`)
    ends = [origin + phase.length] + [o + p.length for o, p in zip(plan.origins[k + 1:], plan.phases[k + 1:])]
    ends = [max(min(e, end), s) for e in ends]
    old = [ends[0] - s] + [b - a for a, b in zip(ends, ends[1:])]
    new = _scaled(old, end - s, total_steps - s) if tail is None else tail(old, total_steps - s)
    phases, starts, origins = list(plan.phases[:k + 1]), list(plan.starts[:k + 1]), list(plan.origins[:k + 1])
    u0 = min(s - origin, phase.length)
    rest = [phase.rest(u0, new[0], levels)] + [p.resized(n) for p, n in zip(plan.phases[k + 1:], new[1:])]
    at = s
    for j, (p, n) in enumerate(zip(rest, new)):
        if n or j == len(rest) - 1:  # a phase of length 0 before another is never active
            phases.append(p)
            origins.append(at)
            starts.append(max(at, s + 1))  # up to `s` the old plan holds
        at += n
    return Joined(tuple(phases), tuple(starts), tuple(origins))


def _scaled(lengths: list[int], old: int, new: int) -> list[int]:
    """``lengths`` (summing to ``old``) scaled to sum to ``new``, cumulatively rounded (all of it to the
    first when ``old`` is 0)."""
    if old <= 0:
        return [new] + [0] * (len(lengths) - 1)
    out, acc, prev = [], 0, 0
    for n in lengths:
        acc += n
        b = (acc * new + old // 2) // old
        out.append(b - prev)
        prev = b
    out[-1] += new - prev
    return out


# ------------------------------------------------------- schedules of phases
class PhasedLR(ClosedFormLR, abstract=True):
    r"""A scheduler whose curve is :func:`join` of phases, built by :meth:`_plan` from its hyperparameters.

    It adds :meth:`replan`: re-plans are kept (``replans``, a list of ``(at_step, total_steps)``),
    applied in order to the plan, saved in ``state_dict`` and part of :meth:`schedule_spec` (so of
    the fingerprint). ``total_steps`` is the current end; ``hyperparameters()`` keeps the
    constructor's.
    """

    replans: list[tuple[int, int]]
    plateau: Any = None
    """The :class:`~colossal_sched.plateau.PlateauState` of a schedule ending in a plateau phase (it listens to
    metrics: :meth:`observe`), else None."""

    def _plan(self) -> tuple[list[Phase], list[int]]:
        """The phases and boundaries of the schedule as constructed."""
        raise NotImplementedError

    def _tail(self, plan: Joined, at_step: int, total_steps: int) -> Any:
        """How a re-plan sizes the remaining phases: None to scale them proportionally."""
        return None

    # total_steps: the constructor's value, and the end after re-plans
    @property
    def total_steps(self) -> int:  # type: ignore[override]
        return self._end

    @total_steps.setter
    def total_steps(self, value: int) -> None:
        self._configured_total = self._end = value
        self.replans = []
        self._compiled = None

    @property
    def base_lrs(self) -> list[float]:
        return self._base_lrs

    @base_lrs.setter
    def base_lrs(self, value: list[float]) -> None:
        self._base_lrs = value
        self._compiled = None

    def hyperparameters(self) -> dict[str, Any]:
        hp = super().hyperparameters()
        hp["total_steps"] = self._configured_total
        return hp

    def schedule_spec(self) -> dict[str, Any]:
        return {**super().schedule_spec(), "replans": [list(r) for r in self.replans]}

    def joined(self) -> Joined:
        """The schedule as placed phases (re-plans applied), for this scheduler's base lrs."""
        if self._compiled is None or self._compiled[0] != self._base_lrs:
            self._compiled = (list(self._base_lrs), self._replanned(self.replans))
        return self._compiled[1]

    def _replanned(self, replans: list[tuple[int, int]]) -> Joined:
        """The constructed plan with ``replans`` applied in order."""
        end, self._end = self._end, self._configured_total  # _plan() reads total_steps: the constructor's
        try:
            plan = join(*self._plan())
        finally:
            self._end = end
        for at, total in replans:
            plan = replanned(plan, at, total, self._base_lrs, self._tail(plan, at, total))
        return plan

    def _values(self, step: int) -> tuple[list[float], None]:
        """:meth:`ClosedFormLR._values` of a plan, two calls less on every step's path: ``total_steps`` read from its
        store, no momenta (a schedule of phases that cycles momentum overrides this: OneCycleLR)."""
        return self._lrs(step if step < self._end else self._end, SCALAR), None

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        compiled = self._compiled  # joined(), inlined: this is every step's path
        if compiled is None or compiled[0] != self._base_lrs:
            return self.joined().lrs(ops, t, self._base_lrs)
        return compiled[1].lrs(ops, t, self._base_lrs)

    def _critical_steps(self) -> set[int]:
        """Both sides of every phase boundary of the placed plan (re-plans applied), the end, and the
        critical counts of each phase (:meth:`Phase.critical`: peaks of restarts, factors of products)."""
        plan, T = self.joined(), self.total_steps
        out = set(super()._critical_steps())
        stops = list(plan.starts[1:]) + [T + 1]
        for phase, start, origin, stop in zip(plan.phases, plan.starts, plan.origins, stops):
            last = min(stop - 1, T)
            if start > last:
                continue
            out.update((start, last))
            out.update(origin + u for u in phase.critical() if start <= origin + u <= last)
        return out

    def phase_boundaries(self) -> list[tuple[str, int]]:
        """``(label, step)`` where a phase starts, at marks inside phases, and ``("end", total_steps)``."""
        return [(w, s) for w, s in self.joined().marks() if s < self.total_steps] + [("end", self.total_steps)]

    def replan(self, total_steps: int, at_step: int | None = None) -> None:
        r"""Change the length of the running schedule to ``total_steps``, from ``at_step`` (default: ``last_epoch``).

        The lr up to ``at_step`` is unchanged (bit for bit); what follows is the same shape re-fitted from the lr
        at ``at_step`` to the end value (:func:`replanned`). Refused, with nothing changed, when ``total_steps <=
        at_step`` or ``at_step`` lies inside the warmup. The optimizer gets the lr of the current step again.
        """
        at = self.last_epoch if at_step is None else V.step("at_step", at_step)
        before = (self.replans, self._end, self._compiled)
        kept = [c.state_dict() for c in self._companions]
        self._replan(V.integer("total_steps", total_steps, 1), at)
        try:
            self._check_range()  # e.g. an exponential growth continued to a later end may overflow
            for c in self._companions:  # the other keys' schedules follow the new end
                c.replan(total_steps, at)
        except Exception:
            self.replans, self._end, self._compiled = before
            for c, state in zip(self._companions, kept):
                c.load_state_dict(state)
            raise
        self._apply(self.last_epoch)

    def _replan(self, total: int, at: int) -> None:
        """Add the re-plan ``(at, total)`` (checked first: nothing changes if it is refused).

        Earlier re-plans at ``at`` or later are superseded: they changed nothing up to their own
        ``at_step``, so the curve up to ``at`` is the plan's without them, and the new re-plan re-fits
        that plan's shape from there. Only the re-plans in effect are kept (in ``at_step`` order)."""
        if total <= at:
            raise ReplanError(f"total_steps must be an int > at_step={at} (the re-planned end must follow it), got {total}")
        if total > V.MAX_STEP:
            raise ReplanError(f"total_steps must be an int in [{at + 1}, 2**62], got {total}")
        kept = [(a, t) for a, t in self.replans if a < at]
        plan = self._replanned(kept)
        new = replanned(plan, at, total, self._base_lrs, self._tail(plan, at, total))
        self.replans = [*kept, (at, total)]  # a new list: a copy of this scheduler keeps its own
        self._end = total
        self._compiled = (list(self._base_lrs), new)

    def observe(self, metric: Any) -> bool:
        """Judge a metric as torch's ``ReduceLROnPlateau.step(metric)`` does, without taking a step: a schedule ending
        in a plateau phase (:mod:`~colossal_sched.plateau`) may reduce its level, which the optimizer then holds. A
        metric before the plateau is counted, not judged. Whether the lrs changed; one that is not a finite real
        is refused (:class:`ValueError`), with nothing changed."""
        if self.plateau is None:
            raise TypeError(f"{type(self).__name__} does not listen to metrics: its schedule has no plateau phase "
                            "(ReduceLROnPlateauLR, or a ComposedLR whose last phase is {'type': 'plateau'})")
        value = metric_value("metric", metric)
        t, plan = max(self.last_epoch, 0), self.joined()
        listening = plateau_of(plan.phases[plan.index(min(t, self.total_steps))]) is not None
        changed = self.plateau.observe(value, self._held_levels(t) if listening else None)
        if changed and self.last_epoch >= 0:
            self._apply(self.last_epoch)
        return changed

    def adopt_decisions(self, state: dict[str, Any]) -> bool:
        """Take a saved state's plateau decisions (progress, as its step is) where both schedules end in a plateau
        (a resume keeping the current schedule); whether it did. A malformed one raises :class:`ValueError`."""
        if self.plateau is None or not isinstance(state.get("plateau"), dict):
            return False
        self.plateau, self._compiled = self.plateau.loaded(state["plateau"]), None  # rebound: a rollback restores it
        self._apply(max(self.last_epoch, 0))
        return True

    def _held_levels(self, t: int) -> list[float]:
        """The plateau's lrs at ``t`` as the optimizer holds them (a tensor lr rounded to its dtype), which torch's
        rule reduces: a float32 lr is reduced from its float32 value, as torch's ``float(group["lr"])``."""
        lrs = self.lr_at(t)
        if self.key == "lr" and self.last_epoch == t:
            lrs = [float(g["lr"]) if isinstance(g["lr"], torch.Tensor) else lr
                   for g, lr in zip(self.optimizer.param_groups, lrs)]
        return lrs

    def _extra_state(self) -> dict[str, Any]:
        extra = {"replans": [list(r) for r in self.replans]}
        return extra if self.plateau is None else {**extra, "plateau": self.plateau.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if self.plateau is not None:  # rebound, never mutated: a failed load rolls back to the old one
            if "plateau" not in state:
                raise ValueError(f"the saved state of {type(self).__name__} has no 'plateau' (what the metrics decided)")
            self.plateau = self.plateau.loaded(state["plateau"])
        saved = state.get("replans", [])
        if not isinstance(saved, list) or not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in saved):
            raise ValueError(f"corrupt scheduler state: 'replans' must be a list of [at_step, total_steps], got {saved!r}")
        self.total_steps = self._configured_total  # forget this run's re-plans: the state's are the truth
        for at, total in saved:
            self._replan(V.integer("replans total_steps", total, 1), V.step("replans at_step", at))
