"""The 1cycle policy (Smith & Topin), with torch's formulas."""

import bisect
import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from . import _validate as V
from ._ops import Ops, progress
from .base import ClosedFormLR, _as_float
from .errors import InvalidLRError, MissingInitialLRError
from .phases import Levels, Phase
from .plan import Joined, PhasedLR, join


@dataclass(frozen=True)
class Anneal(Phase):
    """torch's ``OneCycleLR`` phase: each group from ``levels[g][0]`` to ``levels[g][1]`` (absolute values)
    at torch's progress :math:`\\mathrm{pct} = (t - s) / (e - s)`, with torch's fractional ``start`` and
    ``end`` steps :math:`s, e` and the absolute step :math:`t = \\mathrm{origin} + u` (exact), by half a
    cosine (``cos``) or a straight line, written as torch writes them: the same bits."""

    origin: int = 0
    start: float = 0.0
    end: float = 0.0
    levels: tuple[tuple[float, float], ...] = ()
    cos: bool = True
    kind: ClassVar[str] = "anneal"
    in_specs: ClassVar[bool] = False

    @cached_property
    def terms(self) -> tuple[tuple[float, float], ...]:
        """``(b, h)`` per group with value ``b + h * x`` (:meth:`shape`): torch's ``b + (a - b) / 2.0 * x``,
        ``x = cos(pi * pct) + 1`` for ``'cos'``; ``(b - a) * pct + a``, ``x = pct`` for ``'linear'``."""
        return tuple((b, (a - b) / 2.0) if self.cos else (a, b - a) for a, b in self.levels)

    def shape(self, ops: Ops, u: Any) -> Any:
        """``x`` at local count(s) ``u``: ``cos(pi * pct) + 1`` or ``pct`` (inline for one step in :meth:`OneCycleLR._values`)."""
        pct = progress(ops, self.origin + u - self.start, self.end - self.start)
        return ops.cos(math.pi * pct) + 1 if self.cos else pct

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        x = self.shape(ops, u)
        return [b + h * x for b, h in self.terms]


class OneCycleLR(PhasedLR):
    r"""The 1cycle policy with torch's formulas; ``max_lr`` is each group's lr at construction.

    Phases (two-phase default; ``three_phase=True`` adds the symmetric descent of the paper),
    with :math:`P = \mathrm{pct\_start} \cdot T`, initial :math:`= \max/\mathrm{div\_factor}`,
    min :math:`= \mathrm{initial}/\mathrm{final\_div\_factor}`, and
    :math:`\mathrm{anneal}(a, b, p) = b + \frac{a - b}{2}(1 + \cos \pi p)` (or :math:`a + (b - a)p` for ``'linear'``):

    .. math::
        \mathrm{lr}(t) = \begin{cases} \mathrm{anneal}(\mathrm{initial}, \max, \frac{t}{P - 1}) & t \le P - 1 \\
        \mathrm{anneal}(\max, \min, \frac{t - (P - 1)}{T - P}) & \text{otherwise} \end{cases}

    Momentum (SGD ``momentum`` or Adam ``betas[0]``) is cycled inversely between ``max_momentum``
    and ``base_momentum``. Past :math:`T - 1` the lr holds at min (torch raises past :math:`T`).

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`; None to use ``epochs * steps_per_epoch``.
        pct_start (float, optional): Fraction of the cycle spent increasing the lr, in ``[0, 1]``, defaults to 0.3.
        anneal_strategy (str, optional): ``'cos'`` or ``'linear'``, defaults to ``'cos'``.
        cycle_momentum (bool, optional): Cycle momentum inversely to the lr, defaults to True.
        base_momentum (float, optional): Lower momentum boundary, in ``[0, 1)``, defaults to 0.85.
        max_momentum (float, optional): Upper momentum boundary, in ``[base_momentum, 1)``, defaults to 0.95.
            Either may be one value per param group. On an optimizer whose momentum (or ``betas[0]``)
            is 0, ``cycle_momentum=True`` turns momentum on, as torch's does, and warns once.
        div_factor (float, optional): initial lr = max_lr / div_factor, > 0, defaults to 25.0.
        final_div_factor (float, optional): min lr = initial lr / final_div_factor, > 0, defaults to 1e4.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
        epochs, steps_per_epoch, three_phase, verbose (keyword): as torch's ``OneCycleLR``.
    """

    colossalai = True
    compat_kwargs = ("num_steps_per_epoch", "epochs", "steps_per_epoch", "verbose")

    def __init__(self, optimizer, total_steps: int, pct_start=0.3, anneal_strategy="cos", cycle_momentum=True,
                 base_momentum=0.85, max_momentum=0.95, div_factor=25.0, final_div_factor=10000.0, last_epoch=-1,
                 **kwargs):
        if total_steps is None:
            epochs, per_epoch = kwargs.get("epochs"), kwargs.get("steps_per_epoch")
            if epochs is None or per_epoch is None:
                raise ValueError("OneCycleLR needs total_steps, or both epochs and steps_per_epoch")
            total_steps = V.integer("epochs", epochs, 1) * V.integer("steps_per_epoch", per_epoch, 1)
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos",
                   cycle_momentum: bool = True, base_momentum: Any = 0.85, max_momentum: Any = 0.95,
                   div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.pct_start = V.real("pct_start", pct_start, low=0.0, high=1.0)
        self.anneal_strategy = V.choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
        self.cycle_momentum = V.boolean("cycle_momentum", cycle_momentum)
        self.div_factor = V.real("div_factor", div_factor, low=0.0, low_open=True)
        self.final_div_factor = V.real("final_div_factor", final_div_factor, low=0.0, low_open=True)
        self.three_phase = V.boolean("three_phase", three_phase)
        groups = self.optimizer.param_groups
        self.base_momentum = _per_group("base_momentum", base_momentum, len(groups))
        self.max_momentum = _per_group("max_momentum", max_momentum, len(groups))
        for g, (lo, hi) in enumerate(zip(self.base_momentum, self.max_momentum)):
            if lo > hi:
                raise ValueError(f"base_momentum must be <= max_momentum, got {lo} > {hi} (param group {g})")
        if self.cycle_momentum and not all("momentum" in g or "betas" in g for g in groups):
            raise ValueError(
                "cycle_momentum=True needs an optimizer with 'momentum' (SGD-like) or 'betas' (Adam-like); "
                f"{type(self.optimizer).__name__} has neither: pass cycle_momentum=False"
            )
        p, total = self.pct_start * self.total_steps, self.total_steps
        self.end_steps = [p - 1, 2 * p - 2, total - 1] if self.three_phase else [p - 1, total - 1]  # torch's end_step
        self._momentum_plan: tuple[Any, Any, Any] = (None, None, None)

    def _warn_momentum_off(self) -> None:
        """Warn once, at construction, where ``cycle_momentum`` turns on a momentum the optimizer has off."""
        if not self.cycle_momentum:
            return
        off = [i for i, g in enumerate(self.optimizer.param_groups) if (g["betas"][0] if "betas" in g else g["momentum"]) == 0]
        if off:
            warnings.warn(
                f"OneCycleLR with cycle_momentum=True turns momentum on: param_groups {off} have momentum 0 and will "
                f"get {min(self.base_momentum)}..{max(self.max_momentum)} (as torch's OneCycleLR does, e.g. SGD becomes "
                "heavy-ball SGD); pass cycle_momentum=False to keep it off",
                UserWarning,
                stacklevel=5,  # the constructor's caller
            )

    def _check_ends(self, g: int, peak: float, initial: float) -> None:
        """The initial lr ``max_lr / div_factor`` and the final ``initial / final_div_factor`` must be finite."""
        for name, v in (("div_factor", initial), ("final_div_factor", initial / self.final_div_factor)):
            if not v <= V.MAX_FLOAT:
                raise InvalidLRError(
                    f"OneCycleLR: {name}={getattr(self, name)} gives param_groups[{g}] an lr of {v} (max_lr {peak}, "
                    f"div_factor={self.div_factor}, final_div_factor={self.final_div_factor}): max_lr / div_factor "
                    "and max_lr / div_factor / final_div_factor must be finite"
                )

    def _check_range(self) -> None:
        for g, (peak, initial) in enumerate(zip(self.max_lrs, self.base_lrs)):
            self._check_ends(g, peak, initial)
        super()._check_range()

    def _initial_lrs(self, last_epoch: int) -> list[float]:
        self._warn_momentum_off()
        groups = self.optimizer.param_groups
        if last_epoch == -1:  # checked for every group before any is changed
            peaks = [V.real(f"param_groups[{i}]['lr'] (the max_lr)", _as_float(g["lr"]), low=0.0) for i, g in enumerate(groups)]
            for i, peak in enumerate(peaks):
                self._check_ends(i, peak, peak / self.div_factor)
            for group, peak in zip(groups, peaks):
                group["max_lr"] = peak
                group["initial_lr"] = peak / self.div_factor
                group["min_lr"] = group["initial_lr"] / self.final_div_factor
        for i, group in enumerate(groups):
            if "max_lr" not in group:
                raise MissingInitialLRError(
                    f"param_groups[{i}] has no 'max_lr': resuming OneCycleLR with last_epoch={last_epoch} needs the "
                    "optimizer state of the run that created it (load it first), or use last_epoch=-1 and step_to(step)"
                )
            V.real(f"param_groups[{i}]['max_lr']", group["max_lr"], low=0.0)
        self.max_lrs = [group["max_lr"] for group in groups]
        return super()._initial_lrs(0)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        return self._placed(self._levels()[0])

    def _placed(self, levels: list[list[tuple[float, float]]]) -> tuple[list[Phase], list[int]]:
        """torch's phases, annealing between ``levels[phase][group]``, on integer boundaries: torch takes the
        first phase whose ``end_step >= t``, so phase ``i`` holds the steps ``max(end_step[:i]) < t <= end_step[i]``
        (the last one every step after), and a phase that holds none is left out."""
        T, cos, last = self.total_steps, self.anneal_strategy == "cos", len(self.end_steps) - 1
        phases: list[Phase] = []
        bounds, lo = [], 0  # lo: the first step not held by an earlier phase
        for i, (start, end) in enumerate(zip([0.0] + self.end_steps[:-1], self.end_steps)):
            hi = T + 1 if i == last else math.floor(end) + 1  # (t <= end) == (t < floor(end) + 1) for an int t
            if hi > lo:
                bounds += [lo] if phases else []
                phases.append(Anneal(min(hi, T + 1) - lo, lo, start, end, tuple(levels[i]), cos))
            lo = max(lo, hi)
        return phases, bounds

    def _plans(self) -> tuple[Joined, Joined]:
        """The lr's and the momentum's :class:`Joined`: the same phases, between other levels. Kept with them for
        :meth:`_values`: each phase's ``(b, h, b_m, h_m)`` per group, the lr's and the momentum's :attr:`Anneal.terms`."""
        plan = self.joined()
        if self._momentum_plan[0] is not plan:
            momentum = join(*self._placed(self._levels()[1]))
            terms = tuple(tuple((*a, *m) for a, m in zip(p.terms, q.terms)) for p, q in zip(plan.phases, momentum.phases))
            self._momentum_plan = (plan, momentum, terms)
        return plan, self._momentum_plan[1]

    def _levels(self) -> tuple[list, list]:
        """Per phase and group, the ``(start, end)`` of the lr and of the momentum."""
        lows = [b / self.final_div_factor for b in self.base_lrs]
        init, peak, mlo, mhi = self.base_lrs, self.max_lrs, self.base_momentum, self.max_momentum
        if self.three_phase:
            lr = [list(zip(init, peak)), list(zip(peak, init)), list(zip(init, lows))]
            mom = [list(zip(mhi, mlo)), list(zip(mlo, mhi)), list(zip(mhi, mhi))]
        else:
            lr = [list(zip(init, peak)), list(zip(peak, lows))]
            mom = [list(zip(mhi, mlo)), list(zip(mlo, mhi))]
        return lr, mom

    def _momenta(self, t: Any, ops: Ops) -> list[Any] | None:
        return self._plans()[1].lrs(ops, t, self.base_lrs) if self.cycle_momentum else None

    def _values(self, step: int) -> tuple[list[float], list[float] | None]:  # lr and momentum from one lookup and one cosine
        t = step if step < self._end else self._end  # total_steps, clamped as every path (lr_table) is
        compiled, (built_on, _, terms) = self._compiled, self._momentum_plan  # _plans(), inlined: every step's path
        if compiled is None or compiled[0] != self._base_lrs or built_on is not compiled[1]:
            plan, terms = self._plans()[0], self._momentum_plan[2]
        else:
            plan = compiled[1]
        i = bisect.bisect_right(plan.starts, t) - 1
        phase = plan.phases[i]  # its Anneal.shape at t (origin + u is t), progress() without the calls: min(x, n) is
        x, n = t - phase.start, phase.end - phase.start  # x unless n < x, max(p, 0.0) is p unless 0.0 > p
        pct = 1.0 if n <= 0 else (n if n < x else x) / n
        pct = 0.0 if 0.0 > pct else pct
        x = math.cos(math.pi * pct) + 1 if phase.cos else pct
        lrs, momenta = [], []
        for b, h, mb, mh in terms[i]:  # Anneal.lrs of both plans in one loop (cheaper than two comprehensions)
            lrs.append(b + h * x)
            momenta.append(mb + mh * x)
        return lrs, momenta if self.cycle_momentum else None

    # made of phases, but its cycle is not re-fitted to a new length: no re-plans, none in its state
    replan = ClosedFormLR.replan
    schedule_spec = ClosedFormLR.schedule_spec

    def hyperparameters(self) -> dict[str, Any]:
        hp = super().hyperparameters()
        for name in ("base_momentum", "max_momentum"):
            values = hp[name]
            hp[name] = values[0] if len(set(values)) == 1 else values
        return hp

    def _extra_state(self) -> dict[str, Any]:
        return {"max_lrs": list(self.max_lrs)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "max_lrs" in state:
            max_lrs = state["max_lrs"]
            if not isinstance(max_lrs, list) or len(max_lrs) != len(self.base_lrs):
                raise ValueError(f"max_lrs must be a list of {len(self.base_lrs)} floats >= 0, got {V.short(max_lrs)}")
            self.max_lrs = [V.real(f"max_lrs[{i}]", m, low=0.0) for i, m in enumerate(max_lrs)]

    def _diff_extra_state(self, state: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """The saved peak lrs differ only where they do not explain the saved base lrs: a state whose
        ``base_lrs == max_lrs / div_factor`` is the resumed run's own peak, adopted as its base lrs are
        (the optimizer may already hold that run's lr); any other ``max_lrs`` is another schedule."""
        saved = state.get("max_lrs", "<missing>")
        if saved == list(self.max_lrs):
            return []
        div = state["hyperparams"].get("div_factor", self.div_factor)
        if isinstance(saved, list) and len(saved) == len(state["base_lrs"]) and isinstance(div, (int, float)) and all(
            math.isclose(m / div, b, rel_tol=1e-12) for m, b in zip(saved, state["base_lrs"])
        ):
            return []
        return [("max_lrs", saved, list(self.max_lrs))]


def _per_group(name: str, value: Any, n: int) -> list[float]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{name} must be a float or a list of {n} (one per param group), got {len(values)}")
    return [V.real(name, v, low=0.0, high=1.0, high_open=True) for v in values]
