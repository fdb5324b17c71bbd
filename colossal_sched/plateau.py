"""A schedule that listens: torch's ``ReduceLROnPlateau`` as a phase, its metric agreed on every rank.

The lr of a :class:`Plateau` phase is the peak until the metrics say otherwise: after more than ``patience``
observations without an improvement (outside ``cooldown``), each group's level becomes
:math:`\\max(\\mathrm{level}\\cdot\\mathrm{factor},\\ \\mathrm{min\\_lr}_g)` (kept only where it falls by more than
``eps``), exactly torch's rule, so the same metrics give the same lrs bit for bit. An improvement is
``metric < best * (1 - threshold)`` (``mode="min"``, ``threshold_mode="rel"``), ``metric < best - threshold``
(``"abs"``), and the mirror images for ``mode="max"``.

The decision state (:class:`PlateauState`: best, bad observations, cooldown, levels, metrics seen) belongs to the
scheduler, is saved in its state, and is what every rank's sync compares. A hook given ``metric=`` reduces the
metric over the data-parallel group inside the lr sync (:mod:`colossal_sched.lr_sync`), so every rank observes
the same value. A plateau is the last phase of a schedule (its end is decided by the metrics): after a warmup
(:class:`~colossal_sched.reduce_on_plateau.ReduceLROnPlateauLR`) or any phases of a :class:`~colossal_sched.composed.ComposedLR`.
"""
from __future__ import annotations

import math
from numbers import Real
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Sequence

from . import _validate as V
from .errors import MetricError
from ._ops import Ops
from .phases import Levels, Phase, Scaled, _Wrapper, key

MODES = ("min", "max")
THRESHOLD_MODES = ("rel", "abs")


def metric_value(name: str, value: Any, finite: bool = True) -> float:
    """A metric as a float: a real, or a one-element tensor (read from its device once); finite unless ``finite=False``."""
    if hasattr(value, "numel") and hasattr(value, "item") and not isinstance(value, bool):
        if value.numel() != 1:
            raise ValueError(f"{name} must be one finite number, got a tensor of {value.numel()} elements")
        value = value.item()
    if not finite and isinstance(value, Real) and not isinstance(value, bool) and not math.isfinite(value):
        return float(value)
    return V.real(name, value)


def checked_metric(scheduler: Any, metric: Any, nonfinite: str = "refuse") -> float | None:
    """``metric`` as a float for a hook to observe (None: none given), or :class:`~colossal_sched.errors.MetricError`:
    a schedule without a plateau, not a number, or not finite (kept as NaN/inf with ``nonfinite="skip"``)."""
    if metric is None:
        return None
    if getattr(scheduler, "plateau", None) is None:
        raise MetricError(f"metric given to the hook of {type(scheduler).__name__}, which does not listen to metrics: "
                          "its schedule has no plateau phase (ReduceLROnPlateauLR, or a ComposedLR ending in "
                          "{'type': 'plateau'})")
    try:
        return metric_value("metric", metric, finite=nonfinite == "refuse")
    except (TypeError, ValueError) as e:
        raise MetricError(f"{e}: refused, nothing observed (nonfinite_metric='skip' skips a NaN or inf)") from None


def _min_lr(name: str, value: Any) -> Any:
    """A floor for every group (a float >= 0) or one per group (a list of them)."""
    if isinstance(value, (list, tuple)):
        return [V.real(f"{name}[{i}]", v, low=0.0) for i, v in enumerate(value)]
    return V.real(name, value, low=0.0)


def _factor(name: str, value: Any) -> float:
    return V.real(name, value, low=0.0, high=1.0, high_open=True)


def _nonnegative_int(name: str, value: Any) -> int:
    return V.integer(name, value, 0)


@dataclass(frozen=True)
class Plateau(Phase):
    """The peak, reduced by ``factor`` when the metrics stop improving (torch's ``ReduceLROnPlateau``); the levels
    are those of the scheduler's :class:`PlateauState` (``state``) once it has reduced them."""

    mode: str = key("min", lambda n, v: V.choice(n, v, MODES))
    factor: float = key(0.1, _factor)
    patience: int = key(10, _nonnegative_int)
    threshold: float = key(1e-4, lambda n, v: V.real(n, v, low=0.0))
    threshold_mode: str = key("rel", lambda n, v: V.choice(n, v, THRESHOLD_MODES))
    cooldown: int = key(0, _nonnegative_int)
    min_lr: Any = key(0.0, _min_lr)
    eps: float = key(1e-8, lambda n, v: V.real(n, v, low=0.0))
    state: Any = field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "plateau"

    def lrs(self, ops: Ops, u: Any, peaks: Levels) -> list[Any]:
        levels = None if self.state is None else self.state.levels
        return list(peaks if levels is None else levels)  # a scalar per group, as Constant


def plateau_of(phase: Phase) -> Plateau | None:
    """The :class:`Plateau` that ``phase`` is, or wraps (scaled, or re-planned from the levels at a step), else None."""
    while isinstance(phase, _Wrapper):
        phase = phase.inner
    return phase if isinstance(phase, Plateau) else None


class PlateauState:
    """What a plateau has learned from the metrics: ``best``, ``num_bad_epochs``, ``cooldown_counter``, the reduced
    ``levels`` (None until the first reduction) and ``metrics`` (observations seen, those before the plateau
    included). :meth:`observe` is all or nothing; :meth:`state_dict` is plain JSON data (``best`` None: no metric yet)."""

    def __init__(self, phase: Plateau, n_groups: int) -> None:
        self.phase = phase
        floors = tuple(phase.min_lr) if isinstance(phase.min_lr, (list, tuple)) else (phase.min_lr,) * n_groups
        if len(floors) != n_groups:
            raise ValueError(f"min_lr must be a float or a list of {n_groups} floats (one per param group), "
                             f"got {len(floors)}: {list(floors)}")
        self.min_lrs = floors
        self.best = math.inf if phase.mode == "min" else -math.inf  # torch's mode_worse: no metric judged yet
        self.num_bad_epochs = self.cooldown_counter = self.metrics = 0
        self.levels: tuple[float, ...] | None = None

    def attached(self, phase: Phase) -> Phase:
        """``phase`` (this state's plateau, or one scaling it) judging metrics with this state."""
        if isinstance(phase, Scaled):
            return replace(phase, inner=self.attached(phase.inner))
        return replace(phase, state=self)

    def _is_better(self, a: float) -> bool:
        p, best = self.phase, self.best
        if p.mode == "min":
            return a < best * (1.0 - p.threshold) if p.threshold_mode == "rel" else a < best - p.threshold
        return a > best * (p.threshold + 1.0) if p.threshold_mode == "rel" else a > best + p.threshold

    def observe(self, metric: float, current: Sequence[float] | None) -> bool:
        """One observation (torch's ``ReduceLROnPlateau.step``), with ``current`` the plateau's levels now, or None
        before the plateau (the metric is only counted). Whether the levels changed."""
        self.metrics += 1
        if current is None:
            return False
        p = self.phase
        if self._is_better(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs <= p.patience:
            return False
        self.cooldown_counter, self.num_bad_epochs = p.cooldown, 0
        new = [v if old - v > p.eps else old for old, v in ((old, max(old * p.factor, lo)) for old, lo in zip(current, self.min_lrs))]
        changed = new != list(current)
        if changed or self.levels is not None:
            self.levels = tuple(new)
        return changed

    def scales(self, peaks: Sequence[float]) -> list[float]:
        """Each group's level over its peak: the current reduction (1.0 before any)."""
        if self.levels is None:
            return [1.0] * len(peaks)
        return [lv / pk if pk else 1.0 for lv, pk in zip(self.levels, peaks)]

    def digest(self) -> int:
        """A 62-bit hash of the decision state, equal on two ranks (same Python) exactly when their states are."""
        return hash((self.best, self.num_bad_epochs, self.cooldown_counter, self.metrics, self.levels or ())) & ((1 << 62) - 1)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best if math.isfinite(self.best) else None, "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter,
                "levels": None if self.levels is None else list(self.levels), "metrics": self.metrics}

    def loaded(self, state: Any) -> "PlateauState":
        """A copy of this state holding ``state`` (checked: :class:`ValueError` naming the field)."""
        if not isinstance(state, dict) or sorted(state) != sorted(self.state_dict()):
            raise ValueError(f"plateau must be a dict with the keys {sorted(self.state_dict())}, got {V.short(state)}")
        new = PlateauState(self.phase, len(self.min_lrs))
        if state["best"] is not None:
            new.best = V.real("plateau.best", state["best"])
        new.num_bad_epochs = V.integer("plateau.num_bad_epochs", state["num_bad_epochs"], 0)
        new.cooldown_counter = V.integer("plateau.cooldown_counter", state["cooldown_counter"], 0)
        new.metrics = V.integer("plateau.metrics", state["metrics"], 0)
        levels = state["levels"]
        if levels is not None:
            if not isinstance(levels, list) or len(levels) != len(self.min_lrs):
                raise ValueError(f"plateau.levels must be null or a list of {len(self.min_lrs)} lrs, got {V.short(levels)}")
            new.levels = tuple(V.real(f"plateau.levels[{i}]", v, low=0.0) for i, v in enumerate(levels))
        return new
