"""Linear warmup followed by linear decay to zero."""

from typing import Any

from . import _validate as V
from ._ops import Ops
from .base import ClosedFormLR
from .cosine import COMPAT_KWARGS


class LinearWarmupLR(ClosedFormLR):
    r"""Linear warmup over :math:`W` steps, then linear decay to 0 at :math:`T`:

    .. math::
        \mathrm{lr}(t) = \begin{cases} \frac{t + 1}{W + 1}\,\mathrm{base} & t < W \\
        \frac{T - \min(t, T)}{T - W}\,\mathrm{base} & t \ge W \end{cases}

    Args:
        optimizer (:class:`torch.optim.Optimizer`): Wrapped optimizer.
        total_steps (int): Number of total training steps :math:`T`.
        warmup_steps (int, optional): Number of warmup steps, in ``[0, T)``, defaults to 0.
        last_epoch (int, optional): Step to resume at; -1 starts from the beginning.
    """

    hyperparams = ("total_steps", "warmup_steps")

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0, last_epoch: int = -1, **kwargs):
        V.unknown_kwargs(type(self).__name__, kwargs, COMPAT_KWARGS)
        self._configure(total_steps=total_steps, warmup_steps=warmup_steps)
        super().__init__(optimizer, last_epoch)

    def _configure(self, total_steps: int, warmup_steps: int = 0) -> None:
        self.total_steps = V.integer("total_steps", total_steps, 1)
        self.warmup_steps = V.warmup(warmup_steps, self.total_steps, decay_follows=True)

    def _lrs(self, t: Any, ops: Ops) -> list[Any]:
        w, total = self.warmup_steps, self.total_steps
        warm = (t + 1) / (w + 1)
        decay = (total - t) / (total - w)
        warming = t < w
        return [ops.where(warming, warm * base, decay * base) for base in self.base_lrs]
