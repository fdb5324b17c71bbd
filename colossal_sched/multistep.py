"""Step decay at given milestones, with optional warmup."""

import warnings
from typing import List

from . import _validate as V
from .phases import Milestones, Phase
from .plan import PhasedLR, warmup_then
from .decay import check_power


class _MultiStep(PhasedLR, abstract=True):
    """What MultiStepLR and MultiStepWarmupLR share: decay by ``gamma`` at milestones, after a warmup if any."""

    warmup_steps = 0

    def _configure_decay(self, milestones: List[int], gamma: float) -> None:
        self.milestones = V.milestones(milestones, self.warmup_steps)
        self.gamma = V.real("gamma", gamma, low=0.0, low_open=True)
        late = [m for m in self.milestones if m > self.total_steps]
        if late:
            warnings.warn(f"milestones {late} lie past total_steps={self.total_steps} and will never be reached", stacklevel=5)

    def _check_range(self) -> None:
        reached = [m for m in self.milestones if m <= self.total_steps]
        check_power(self, self.gamma, len(reached), lambda k: reached[k - 1], "base * gamma ** (milestones reached)")
        super()._check_range()

    def _plan(self) -> tuple[list[Phase], list[int]]:
        w = self.warmup_steps  # milestones count from the warmup's end (none lies inside it)
        return warmup_then(w, Milestones(self.total_steps - w, tuple(m - w for m in self.milestones), self.gamma))


class MultiStepLR(_MultiStep):
    r"""Decay by ``gamma`` at every milestone reached:

    .. math:: \mathrm{lr}(t) = \mathrm{base} \cdot \gamma^{\,|\{m \in \mathrm{milestones} : m \le \min(t, T)\}|}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        milestones (List[int]): Strictly increasing step indices, required.
        gamma (float, optional): Multiplicative factor of lr decay, > 0, defaults to 0.1.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    colossalai = True

    def __init__(self, optimizer, total_steps: int, milestones: List[int] = None, gamma: float = 0.1,
                 last_epoch: int = -1, **kwargs):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, milestones: List[int] = None, gamma: float = 0.1) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self._configure_decay(milestones, gamma)


class MultiStepWarmupLR(_MultiStep):
    r"""Linear warmup over :math:`W` steps, then decay by ``gamma`` at every milestone reached:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W}\,\mathrm{base} & t < W \\
        \mathrm{base} \cdot \gamma^{\,|\{m : W \le m \le \min(t, T)\}|} & t \ge W \end{cases}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T]``, defaults to 0.
        milestones (List[int]): Strictly increasing step indices, none below ``warmup_steps``, required.
        gamma (float, optional): Multiplicative factor of lr decay, > 0, defaults to 0.1.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    colossalai = True

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, milestones: List[int] = None,
                 gamma: float = 0.1, last_epoch: int = -1, **kwargs):
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, warmup_steps: int = 0, milestones: List[int] = None, gamma: float = 0.1) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=False)
        self._configure_decay(milestones, gamma)
