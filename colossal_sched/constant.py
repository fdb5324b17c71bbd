"""Constant lr after a warmup."""
from __future__ import annotations

from torch.optim import Optimizer

from . import _validate as V
from .phases import Constant, Phase
from .plan import PhasedLR, warmup_then


class ConstantWarmupLR(PhasedLR):
    r"""Linear warmup over :math:`W` steps, then the base lr:

    .. math:: \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W}\,\mathrm{base} & t < W \\ \mathrm{base} & t \ge W \end{cases}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T]``, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, last_epoch: int = -1) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, warmup_steps: int = 0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=False)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        return warmup_then(self.warmup_steps, Constant(self.total_steps - self.warmup_steps))
