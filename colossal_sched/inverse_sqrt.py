"""Inverse square-root decay after a warmup (Transformer, Megatron, HF)."""
from __future__ import annotations

from typing import Optional

from torch.optim import Optimizer

from . import _validate as V
from .phases import InverseSqrt, Phase
from .plan import PhasedLR, warmup_then


class InverseSqrtLR(PhasedLR):
    r"""Linear warmup over :math:`W` steps, then inverse square-root decay with timescale
    :math:`\tau` (``timescale``, or :math:`\max(W, 1)`), floored at ``min_lr``:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W}\,\mathrm{base} & t < W \\
        \max\left(\mathrm{min\_lr},\ \mathrm{base}\sqrt{\frac{\tau}{t - W + \tau}}\right) & t \ge W \end{cases}

    The decay does not depend on :math:`T`: a re-plan only moves the end where the lr is held.

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T)``, defaults to 0.
        timescale (float, optional): :math:`\tau > 0`; None for :math:`\max(W, 1)`, defaults to None.
        min_lr (float, optional): Floor of the decay, >= 0, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, timescale: Optional[float] = None,
                 min_lr: float = 0.0, last_epoch: int = -1) -> None:
        super().__init__(**self._arguments(locals()))

    def _configure(self, total_steps: int, warmup_steps: int = 0, timescale: Optional[float] = None, min_lr: float = 0.0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)
        self.timescale = None if timescale is None else V.real("timescale", timescale, low=0.0, low_open=True)
        self.min_lr = V.real("min_lr", min_lr, low=0.0)

    def _plan(self) -> tuple[list[Phase], list[int]]:
        w = self.warmup_steps
        tau = self.timescale if self.timescale is not None else float(max(w, 1))
        return warmup_then(w, InverseSqrt(self.total_steps - w, timescale=tau, min_lr=self.min_lr))
