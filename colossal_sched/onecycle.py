"""The 1cycle policy (Smith & Topin), with torch's formulas."""

import math
from typing import Any

from torch.optim import Optimizer

from . import _validate as V
from ._ops import SCALAR, Ops, progress
from .base import ClosedFormLR, MissingInitialLRError, _as_float
from .cosine import COMPAT_KWARGS

ONECYCLE_KWARGS = COMPAT_KWARGS + ("epochs", "steps_per_epoch", "three_phase", "verbose")


def _anneal(ops: Ops, strategy: str, start: Any, end: Any, pct: Any) -> Any:
    """torch's annealing from ``start`` to ``end`` as ``pct`` goes 0 -> 1."""
    if strategy == "cos":
        return end + (start - end) / 2.0 * (ops.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


class OneCycleLR(ClosedFormLR):
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
        base_momentum (float, optional): Lower momentum boundary, defaults to 0.85.
        max_momentum (float, optional): Upper momentum boundary, defaults to 0.95.
        div_factor (float, optional): initial lr = max_lr / div_factor, > 0, defaults to 25.0.
        final_div_factor (float, optional): min lr = initial lr / final_div_factor, > 0, defaults to 1e4.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
        epochs, steps_per_epoch, three_phase, verbose (keyword): as torch's ``OneCycleLR``.
    """

    hyperparams = (
        "total_steps", "pct_start", "anneal_strategy", "cycle_momentum", "base_momentum", "max_momentum",
        "div_factor", "final_div_factor", "three_phase",
    )  # fmt: skip

    def __init__(
        self,
        optimizer,
        total_steps: int,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=25.0,
        final_div_factor=10000.0,
        last_epoch=-1,
        **kwargs,
    ):
        V.unknown_kwargs(type(self).__name__, kwargs, ONECYCLE_KWARGS)
        if total_steps is None:
            epochs, per_epoch = kwargs.get("epochs"), kwargs.get("steps_per_epoch")
            if epochs is None or per_epoch is None:
                raise ValueError("OneCycleLR needs total_steps, or both epochs and steps_per_epoch")
            total_steps = V.integer("epochs", epochs, 1) * V.integer("steps_per_epoch", per_epoch, 1)
        self.optimizer = optimizer
        self._configure(
            total_steps=total_steps, pct_start=pct_start, anneal_strategy=anneal_strategy, cycle_momentum=cycle_momentum,
            base_momentum=base_momentum, max_momentum=max_momentum, div_factor=div_factor,
            final_div_factor=final_div_factor, three_phase=kwargs.get("three_phase", False),
        )  # fmt: skip
        super().__init__(optimizer, last_epoch)

    def _configure(
        self, total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos", cycle_momentum: bool = True,
        base_momentum: Any = 0.85, max_momentum: Any = 0.95, div_factor: float = 25.0,
        final_div_factor: float = 1e4, three_phase: bool = False,
    ) -> None:  # fmt: skip
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
        if self.cycle_momentum and not all("momentum" in g or "betas" in g for g in groups):
            raise ValueError(
                "cycle_momentum=True needs an optimizer with 'momentum' (SGD-like) or 'betas' (Adam-like); "
                f"{type(self.optimizer).__name__} has neither: pass cycle_momentum=False"
            )
        p, total = self.pct_start * self.total_steps, self.total_steps
        ends = [p - 1, 2 * p - 2, total - 1] if self.three_phase else [p - 1, total - 1]
        self._phases = list(zip(ends, [0.0] + ends[:-1]))  # (end_step, start_step)
        self._last_phase: tuple[Any, int, float] = (None, 0, 0.0)
        self._cached_ends = None

    def _initial_lrs(self, last_epoch: int) -> list[float]:
        groups = self.optimizer.param_groups
        if last_epoch == -1:
            for group in groups:
                group["max_lr"] = _as_float(group["lr"])
                group["initial_lr"] = group["max_lr"] / self.div_factor
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

    def _phase(self, t: int) -> tuple[int, float]:
        """torch's phase for one step (the first whose ``end_step >= t``, else the last) and its progress."""
        if self._last_phase[0] != t:
            i = len(self._phases) - 1
            for j, (end, _) in enumerate(self._phases):
                if t <= end:
                    i = j
                    break
            end, start = self._phases[i]
            self._last_phase = (t, i, progress(SCALAR, t - start, end - start))
        return self._last_phase[1], self._last_phase[2]

    def _cycle(self, t: Any, ops: Ops, ends: list[list[tuple[float, float]]]) -> list[Any]:
        """Anneal each group between its phase's ``(start, end)`` values, ``ends[group][phase]``."""
        s = self.anneal_strategy
        if ops is SCALAR:
            i, pct = self._phase(t)
            if s == "cos":  # torch's _annealing_cos, its cosine taken once for all groups
                c = math.cos(math.pi * pct) + 1
                return [group[i][1] + (group[i][0] - group[i][1]) / 2.0 * c for group in ends]
            return [_anneal(ops, s, *group[i], pct) for group in ends]
        pcts = [progress(ops, t - start, end - start) for end, start in self._phases]
        out = []
        for group in ends:
            values = [_anneal(ops, s, a, b, p) for (a, b), p in zip(group, pcts)]
            value = values[-1]
            for (end, _), earlier in zip(reversed(self._phases[:-1]), reversed(values[:-1])):
                value = ops.where(t <= end, earlier, value)
            out.append(value)
        return out

    def _ends(self) -> tuple[list, list]:
        """Per group and phase, the ``(start, end)`` of the lr and of the momentum (cached)."""
        if self._cached_ends is None:
            lr, mom = [], []
            for initial, peak in zip(self.base_lrs, self.max_lrs):
                low = initial / self.final_div_factor
                lr.append([(initial, peak), (peak, initial), (initial, low)] if self.three_phase else [(initial, peak), (peak, low)])
            for lo, hi in zip(self.base_momentum, self.max_momentum):
                mom.append([(hi, lo), (lo, hi), (hi, hi)] if self.three_phase else [(hi, lo), (lo, hi)])
            self._cached_ends = (lr, mom)
        return self._cached_ends

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        return self._cycle(t, ops, self._ends()[0])

    def _momenta(self, t: Any, ops: Ops) -> list[Any] | None:
        return self._cycle(t, ops, self._ends()[1]) if self.cycle_momentum else None

    def hyperparameters(self) -> dict[str, Any]:
        hp = super().hyperparameters()
        for name in ("base_momentum", "max_momentum"):
            values = hp[name]
            hp[name] = values[0] if len(set(values)) == 1 else values
        return hp

    def _extra_state(self) -> dict[str, Any]:
        return {"max_lrs": list(self.max_lrs)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._cached_ends = None
        if "max_lrs" in state:
            self.max_lrs = [V.real("max_lrs", m, low=0.0) for m in state["max_lrs"]]


def _per_group(name: str, value: Any, n: int) -> list[float]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{name} must be a float or a list of {n} (one per param group), got {len(values)}")
    return [V.real(name, v) for v in values]
