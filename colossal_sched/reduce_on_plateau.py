"""torch's ``ReduceLROnPlateau`` after a linear warmup: a plateau phase (:mod:`colossal_sched.plateau`)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from torch.optim import Optimizer

from . import _validate as V
from .phases import Phase, spec_keys
from .plan import PhasedLR, warmup_then
from .plateau import Plateau, PlateauState, metric_value


class ReduceLROnPlateauLR(PhasedLR):
    r"""Linear warmup over :math:`W` steps, then torch's ``ReduceLROnPlateau``: the base lr, times ``factor`` when the
    metrics stop improving:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W}\,\mathrm{base} & t < W \\
        \mathrm{level} & t \ge W \end{cases}

    with the level the base lr, reduced by the metrics (module docstring). ``step(metrics)`` takes a step and
    observes the metric, as torch's; ``step()`` only steps, :meth:`~colossal_sched.plan.PhasedLR.observe` only
    observes (a metric during the warmup is counted, not judged), and ``LRSchedulerHook.step(n, metric=...)``
    observes one agreed over the data-parallel group. The curve past :math:`W` depends on the metrics: ``lr_table``
    and ``plot`` draw it at the current level.

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int, optional): Length of the run :math:`T` (the lr holds its level up to it and beyond; what
            ``plot`` draws); None, as torch's, for no end (:math:`2^{62}`), defaults to None.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T)``, defaults to 0.
        mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps: torch's, with torch's defaults
            (``factor`` in ``[0, 1)``, ``patience`` and ``cooldown`` >= 0, ``min_lr`` a float or one per group).
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    def __init__(self, optimizer: Optimizer, total_steps: Optional[int] = None, warmup_steps: int = 0, mode: str = "min",
                 factor: float = 0.1, patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: Any = 0.0, eps: float = 1e-8, last_epoch: int = -1) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: Optional[int] = None, warmup_steps: int = 0, mode: str = "min", factor: float = 0.1,
                   patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                   min_lr: Any = 0.0, eps: float = 1e-8) -> None:
        self.total_steps = V.MAX_STEP if total_steps is None else V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)
        kwargs = dict(mode=mode, factor=factor, patience=patience, threshold=threshold, threshold_mode=threshold_mode,
                      cooldown=cooldown, min_lr=min_lr, eps=eps)
        for name, (_, check) in spec_keys(Plateau).items():
            setattr(self, name, check(name, kwargs[name]))
        phase = Plateau(0, **{n: tuple(v) if isinstance(v, list) else v for n in kwargs for v in [getattr(self, n)]})
        self.plateau = PlateauState(phase, len(self.optimizer.param_groups))

    def _plan(self) -> tuple[list[Phase], list[int]]:
        w = self.warmup_steps
        return warmup_then(w, self.plateau.attached(replace(self.plateau.phase, length=self.total_steps - w)))

    def step(self, metrics: Any = None, epoch: int | None = None) -> None:  # type: ignore[override]
        """Take a step (to ``epoch``, deprecated, as torch's), then observe ``metrics`` if given (torch's order)."""
        value = None if metrics is None else metric_value("metrics", metrics)  # refused before the step is taken
        super().step(epoch)
        if value is not None:
            self.observe(value)
